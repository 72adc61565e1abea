"""Common mistakes in orchestration code get an error that says what to do.

From the new-user trial (§4): an activity function called directly (it
would run inline on every replay), ``asyncio.gather`` over durable futures,
and ``replay()`` fed what ``perdure history --json`` prints.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from _helpers import WAIT, runtime

import perdure
from perdure import ActivityContext, OrchestrationContext
from perdure.testing import Simulator, replay

CALLS: list[int] = []


@perdure.activity(name="SideEffect")
def side_effect(ctx: ActivityContext | None, n: int) -> int:
    CALLS.append(n)
    return n * 2


@perdure.activity(name="AsyncSideEffect")
async def async_side_effect(ctx: ActivityContext | None, n: int) -> int:
    CALLS.append(n)
    return n * 3


@perdure.orchestration(name="CallsDirectly")
async def calls_directly(ctx: OrchestrationContext, which: str) -> int:
    if which == "sync":
        return side_effect(None, 3)
    return await async_side_effect(None, 3)


@perdure.orchestration(name="Gathers")
async def gathers(ctx: OrchestrationContext) -> list[int]:
    a = ctx.schedule_activity(side_effect, 1)
    b = ctx.schedule_activity(side_effect, 2)
    return list(await asyncio.gather(a, b))


@perdure.orchestration(name="Schedules")
async def schedules(ctx: OrchestrationContext) -> int:
    return await ctx.schedule_activity(side_effect, 4)


@pytest.mark.parametrize("which", ["sync", "async"])
def test_an_activity_called_directly_in_orchestration_code_is_refused(
    which: str,
) -> None:
    CALLS.clear()
    sim = Simulator(calls_directly, which)
    result = sim.result
    assert result.status == "Failed"
    assert result.error is not None
    assert result.error.type == "TypeError"
    assert "called directly from orchestration code" in result.error.message
    assert "schedule_activity" in result.error.message
    assert CALLS == []


def test_activity_functions_stay_callable_outside_orchestrations() -> None:
    CALLS.clear()
    assert side_effect(None, 5) == 10
    assert asyncio.run(async_side_effect(None, 5)) == 15
    assert CALLS == [5, 5]


async def test_scheduled_activities_still_run_on_the_worker(storage_url: str) -> None:
    async with runtime(storage_url, [schedules], [side_effect]) as rt:
        await rt.client.start_orchestration("s", "Schedules")
        state = await rt.client.wait_for_orchestration("s", timeout=WAIT)
    assert state.output == 8


async def test_gather_points_to_ctx_join(sqlite_url: str) -> None:
    async with runtime(sqlite_url, [gathers], [side_effect]) as rt:
        await rt.client.start_orchestration("g", "Gathers")
        state = await rt.client.wait_for_orchestration("g", timeout=WAIT)
    assert state.status == "Failed"
    assert state.error is not None
    assert "use ctx.join(...) instead of asyncio.gather(...)" in state.error.message


def test_replay_accepts_what_history_json_prints(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    from perdure.cli import main

    async def run() -> None:
        async with runtime(sqlite_url, [schedules], [side_effect]) as rt:
            await rt.client.start_orchestration("h", "Schedules")
            await rt.client.wait_for_orchestration("h", timeout=WAIT)

    asyncio.run(run())
    assert main(["--db", sqlite_url, "history", "h", "--json"]) == 0
    text = capsys.readouterr().out
    for history in (text, json.loads(text)):
        result = replay(schedules, history, instance_id="h")
        assert result.status == "Completed"
        assert result.output == 8
