"""The history format version (``engine`` on OrchestrationStarted, DESIGN §7)."""

from __future__ import annotations

import json
import sqlite3

from _helpers import WAIT, eventually, reached, runtime

import perdure
from perdure import OrchestrationContext, events as h
from perdure._core._history import ENGINE_VERSION


@perdure.orchestration(name="WaitForGo")
async def wait_for_go(ctx: OrchestrationContext) -> str:
    return str(await ctx.schedule_wait("go"))


async def test_new_histories_record_the_engine_version(storage_url: str) -> None:
    async with runtime(storage_url, [wait_for_go]) as rt:
        await rt.client.start_orchestration("v", "WaitForGo")
        await reached(rt.client, "v", h.EventWaitStarted)
        await rt.client.raise_event("v", "go", "went")
        state = await rt.client.wait_for_orchestration("v", timeout=WAIT)
        history = await rt.client.get_history("v")
    assert state.output == "went"
    assert isinstance(history[0], h.OrchestrationStarted)
    assert history[0].engine == ENGINE_VERSION == 2


async def test_a_history_from_a_newer_engine_is_refused_with_both_versions(
    sqlite_url: str,
) -> None:
    async with runtime(sqlite_url, [wait_for_go], instance_cache_size=0) as rt:
        await rt.client.start_orchestration("v", "WaitForGo")
        await reached(rt.client, "v", h.EventWaitStarted)
        # As if a newer perdure had written this execution.
        path = sqlite_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=10)
        with conn:
            (data,) = conn.execute(
                "SELECT data FROM history WHERE instance_id = 'v' AND event_id = 1"
            ).fetchone()
            start = json.loads(data)
            start["engine"] = ENGINE_VERSION + 1
            conn.execute(
                "UPDATE history SET data = ? WHERE instance_id = 'v' AND event_id = 1",
                (json.dumps(start),),
            )
        conn.close()
        await rt.client.raise_event("v", "go", "went")

        async def suspended() -> perdure.OrchestrationState | None:
            state = await rt.client.get_status("v")
            return state if state and state.status == "Suspended" else None

        # Suspended, not failed: a newer perdure can resume it (DESIGN §9).
        state = await eventually(suspended, "the instance to be suspended")
    assert state.error is not None
    assert state.error.category == "configuration"
    assert f"engine version {ENGINE_VERSION + 1}" in state.error.message
    assert f"up to {ENGINE_VERSION}" in state.error.message


def test_first_milestone_histories_have_no_engine_and_still_replay() -> None:
    from perdure.testing import replay

    events = [
        '{"type":"OrchestrationStarted","event_id":1,"timestamp":1.0,'
        '"name":"WaitForGo","version":"1.0.0"}',
        '{"type":"EventWaitStarted","event_id":2,"timestamp":1.0,"name":"go"}',
        '{"type":"EventRaised","event_id":3,"timestamp":2.0,"name":"go","data":"went"}',
        '{"type":"OrchestrationCompleted","event_id":4,"timestamp":2.0,'
        '"output":"went"}',
    ]
    result = replay(wait_for_go, events)
    assert result.status == "Completed"
    assert result.output == "went"
