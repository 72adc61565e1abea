"""Client.cancel_instance: in-flight work is cancelled, finished instances are not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _helpers import (
    WAIT,
    check_replay,
    eventually,
    of_type,
    outcome,
    run_to_end,
    runtime,
)

import perdure
from perdure import events as h

#: Observations per instance id.
SEEN: dict[str, list[str]] = {}


@perdure.activity
async def long_job(ctx: perdure.ActivityContext) -> str:
    SEEN.setdefault(ctx.instance_id, []).append("started")
    await ctx.cancelled
    SEEN[ctx.instance_id].append("cancelled")
    return "discarded"


@perdure.orchestration
async def busy(ctx: perdure.OrchestrationContext) -> object:
    try:
        return await ctx.join(ctx.schedule_activity(long_job), ctx.schedule_timer(30))
    except perdure.Cancelled:
        if not ctx.is_replaying:
            SEEN.setdefault(ctx.instance_id, []).append("body saw Cancelled")
        try:
            ctx.schedule_timer(1)  # cancelled code cannot start new durable work
        except perdure.Cancelled:
            SEEN[ctx.instance_id].append("no new work")
        raise


@perdure.orchestration
async def quick(ctx: perdure.OrchestrationContext) -> str:
    return "done"


ORCHS: list[Callable[..., Any]] = [busy, quick]
ACTS: list[Callable[..., Any]] = [long_job]


async def cancel_scenario(client: perdure.Client, iid: str) -> object:
    SEEN.pop(iid, None)
    await client.start_orchestration(iid, busy)
    await eventually(lambda: SEEN.get(iid), "the activity to start")
    await client.cancel_instance(iid, "operator said stop")
    state = await client.wait_for_orchestration(iid, WAIT)
    await eventually(lambda: "cancelled" in SEEN[iid], "the activity to be told")
    return {"outcome": outcome(state), "seen": sorted(SEEN[iid])}


async def test_cancel_running_instance(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, cancel_scenario, "c"
    )
    assert summary["outcome"] == {
        "status": "Cancelled",
        "output": None,
        "error": {
            "type": "Cancelled",
            "message": "operator said stop",
            "category": "application",
        },
    }
    assert summary["seen"] == [
        "body saw Cancelled",
        "cancelled",
        "no new work",
        "started",
    ]
    assert [e.type for e in history][-4:] == [
        "OrchestrationCancelRequested",
        "ActivityCancelRequested",
        "TimerCancelled",
        "OrchestrationCancelled",
    ]
    assert isinstance(history[-1], h.OrchestrationCancelled)
    assert history[-1].reason == "operator said stop"
    activity = of_type(history, h.ActivityScheduled)[0]
    timer = of_type(history, h.TimerCreated)[0]
    assert (
        of_type(history, h.ActivityCancelRequested)[0].source_event_id
        == activity.event_id
    )
    assert of_type(history, h.TimerCancelled)[0].source_event_id == timer.event_id


async def test_cancel_finished_instance_is_a_noop(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        client = rt.client
        done = await run_to_end(client, "q", quick)
        before = await client.get_history("q")
        await client.cancel_instance("q", "too late")
        # A second instance run afterwards proves the dispatcher went past it.
        await run_to_end(client, "q2", quick)
        after = await client.get_status("q")
        assert after is not None
        assert (after.status, after.output, after.error) == ("Completed", "done", None)
        assert after.updated_at == done.updated_at
        assert await client.get_history("q") == before


async def test_cancel_twice_and_cancel_right_after_start(storage_url: str) -> None:
    # A lease far longer than WAIT: lease renewal cannot be what tells the
    # activity, only the in-process signal (even when the cancel is committed
    # between the worker's fetch and the activity's start).
    async with runtime(storage_url, ORCHS, ACTS, lock_timeout=90) as rt:
        client = rt.client
        SEEN.pop("early", None)
        await client.start_orchestration("early", busy)
        await client.cancel_instance("early", "first")
        await client.cancel_instance("early", "second")
        state = await client.wait_for_orchestration("early", WAIT)
        assert state.status == "Cancelled"
        assert state.error is not None and state.error.message == "first"
        history = await client.get_history("early")
        assert len(of_type(history, h.OrchestrationCancelled)) == 1

        def settled() -> bool:
            seen = SEEN.get("early", [])
            return "started" not in seen or "cancelled" in seen

        await eventually(settled, "the activity to be cancelled or never run")


async def test_cancel_unknown_instance(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        with pytest.raises(perdure.InstanceNotFound, match="nope"):
            await rt.client.cancel_instance("nope")
        assert (await rt.client.list_instances()).items == []
