"""continue_as_new, custom status and the deterministic context values."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from _helpers import (
    WAIT,
    check_replay,
    eventually,
    of_type,
    outcome,
    reached,
    runtime,
    types,
)

import perdure
from perdure import events as h


@perdure.orchestration
async def counter(
    ctx: perdure.OrchestrationContext, state: dict[str, object]
) -> object:
    step = state["step"]
    if step == 0:
        # "x" events raised before "go" are buffered and never consumed here:
        # they must be carried over to the next execution.
        await ctx.schedule_wait("go")
        try:
            ctx.continue_as_new({"step": 1})
        except Exception:  # pragma: no cover - must not be reachable
            return "continue_as_new was swallowed"
    if step == 1:
        got = [await ctx.schedule_wait("x"), await ctx.schedule_wait("x")]
        ctx.continue_as_new({"step": 2, "got": got})
    return {"execution": ctx.execution_id, "got": state["got"]}


#: is_replaying as seen by `identity` before and after its wait, per instance.
REPLAYING: dict[str, list[bool]] = {}


@perdure.orchestration
async def identity(ctx: perdure.OrchestrationContext) -> dict[str, object]:
    guid = ctx.new_guid()
    now = ctx.utc_now().timestamp()
    roll = ctx.random().randint(0, 10**9)
    REPLAYING.setdefault(ctx.instance_id, []).append(ctx.is_replaying)
    ctx.set_custom_status("starting")
    ctx.set_custom_status({"guid": guid, "now": now, "roll": roll})
    await ctx.schedule_wait("go")
    REPLAYING[ctx.instance_id].append(ctx.is_replaying)
    return {"guid": guid, "now": now, "roll": roll, "second": ctx.new_guid()}


ORCHS: list[Callable[..., Any]] = [counter, identity]


async def counter_scenario(client: perdure.Client, iid: str) -> object:
    await client.start_orchestration(iid, counter, {"step": 0})
    await reached(client, iid, h.EventWaitStarted)
    for name, data in (("x", "one"), ("x", "two"), ("go", None)):
        await client.raise_event(iid, name, data)
    state = await client.wait_for_orchestration(iid, WAIT)
    first = await client.get_history(iid, execution_id=1)
    second = await client.get_history(iid, execution_id=2)
    assert isinstance(second[0], h.OrchestrationStarted)
    return {
        "outcome": outcome(state),
        "execution_id": state.execution_id,
        "first": types(first),
        "second": [[e.type, getattr(e, "data", None)] for e in second],
        "carried_input": second[0].input,
    }


async def test_continue_as_new_carries_unconsumed_events(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, [], counter_scenario, "can"
    )
    assert summary["outcome"]["status"] == "Completed", summary
    assert summary["outcome"]["output"] == {"execution": 3, "got": ["one", "two"]}
    assert summary["execution_id"] == 3
    assert summary["first"] == [
        "OrchestrationStarted",
        "EventWaitStarted",
        "EventRaised",
        "EventRaised",
        "EventRaised",
        "OrchestrationContinuedAsNew",
    ]
    second = summary["second"]
    assert second[-1] == ["OrchestrationContinuedAsNew", None]
    assert [x for x in second if x[0] == "EventRaised"] == [
        ["EventRaised", "one"],
        ["EventRaised", "two"],
    ]
    assert summary["carried_input"] == {"step": 1}
    # The latest execution is the default.
    assert types(history) == ["OrchestrationStarted", "OrchestrationCompleted"]
    assert isinstance(history[0], h.OrchestrationStarted)
    assert history[0].input == {"step": 2, "got": ["one", "two"]}


async def test_continue_as_new_histories_stay_readable(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        await counter_scenario(rt.client, "c")
        first = await rt.client.get_history("c", execution_id=1)
        assert isinstance(first[-1], h.OrchestrationContinuedAsNew)
        assert first[-1].input == {"step": 1}
        assert await rt.client.get_history(
            "c", execution_id=3
        ) == await rt.client.get_history("c")
        listed = await rt.client.list_instances()
        assert [(s.instance_id, s.execution_id) for s in listed] == [("c", 3)]


@pytest.mark.parametrize("cache_size", [10_000, 0])
async def test_guid_time_random_are_replay_stable(
    storage_url: str, cache_size: int
) -> None:
    async with runtime(storage_url, ORCHS, instance_cache_size=cache_size) as rt:
        client = rt.client
        outputs = []
        for iid in ("id-1", "id-2"):
            REPLAYING.pop(iid, None)
            await client.start_orchestration(iid, identity)
            recorded = await eventually(partial(dict_status, client, iid), "status")
            await client.raise_event(iid, "go")
            final = await client.wait_for_orchestration(iid, WAIT)
            assert final.status == "Completed", final.error
            output = final.output
            # The values computed again after the wait (by a full replay when
            # the cache is off) are the ones recorded before it.
            assert {k: output[k] for k in ("guid", "now", "roll")} == recorded
            assert output["second"] != output["guid"]
            assert final.custom_status == recorded
            history = await client.get_history(iid)
            assert recorded["now"] == pytest.approx(history[0].timestamp, abs=1e-6)
            updates = of_type(history, h.CustomStatusUpdated)
            assert [u.value for u in updates] == ["starting", recorded]
            # Cache off: turn 2 replays the start (True), then runs the new event.
            expected = [False, True, False] if cache_size == 0 else [False, False]
            assert REPLAYING[iid] == expected
            outputs.append(output)
    # Seeded from the instance id: another instance draws other values.
    assert outputs[0]["guid"] != outputs[1]["guid"]


async def dict_status(client: perdure.Client, iid: str) -> object:
    state = await client.get_status(iid)
    return (
        state.custom_status if state and isinstance(state.custom_status, dict) else None
    )


async def test_custom_status_visible_while_running(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        await rt.client.start_orchestration("cs", identity)
        await eventually(lambda: dict_status(rt.client, "cs"), "status")
        state = await rt.client.get_status("cs")
        assert state is not None and state.status == "Running"
        assert set(state.custom_status) == {"guid", "now", "roll"}
        await rt.client.cancel_instance("cs")
        await rt.client.wait_for_orchestration("cs", WAIT)
