"""``ctx.patched(patch_id)`` in the kernel (DESIGN §9).

The deployed code is `pricing` at `VERSION`: 1 before the patch, 2 with
``if ctx.patched("price-v2")``, 3 once the call and the old branch are gone.
`deploy` switches the version and rebuilds the driver from the history, as
a runtime running the new code does after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _core_util import by_name, check_replay, new_events_after_replay, rows, types

import perdure
from perdure import NondeterminismError, OrchestrationContext, durable_async
from perdure._core import _history as h
from perdure.testing import Simulator, replay

IID = "patched"
VERSION = {"code": 1}


@pytest.fixture(autouse=True)
def _code_v1() -> Iterator[None]:
    VERSION["code"] = 1
    yield
    VERSION["code"] = 1


def deploy(sim: Simulator, version: int) -> None:
    """Run *version* of the code from now on (the driver replays the history)."""
    VERSION["code"] = version
    sim.restart()


def markers(history: list[h.Event]) -> list[tuple[int, str, str]]:
    return [
        (e.event_id, e.patch_id, e.scope)
        for e in history
        if isinstance(e, h.PatchApplied)
    ]


def activities(history: list[h.Event]) -> list[str]:
    return [e.name for e in history if isinstance(e, h.ActivityScheduled)]


@perdure.orchestration(name="Pricing")
async def pricing(ctx: OrchestrationContext, order: str) -> dict[str, Any]:
    decisions: list[bool] = []
    quote = await ctx.schedule_activity("Quote", order)
    if VERSION["code"] == 2:
        decisions.append(ctx.patched("price-v2"))
        new = decisions[-1]
    else:
        new = VERSION["code"] == 3
    price = await ctx.schedule_activity("PriceV2" if new else "Price", quote)
    if VERSION["code"] == 2:
        decisions.append(ctx.patched("price-v2"))  # asked again: same answer
    receipt = await ctx.schedule_activity("Receipt", price)
    return {"price": price, "receipt": receipt, "decisions": decisions}


def run_to_end(sim: Simulator) -> None:
    for name in ("Quote", "Price", "PriceV2", "Receipt"):
        found = [p for p in sim.pending() if p.name == name]
        if found:
            sim.complete(found[0].event_id, f"{name.lower()}-ok")


# ------------------------------------------------------------ new instances


def test_a_new_instance_gets_true_and_one_marker() -> None:
    VERSION["code"] = 2
    sim = Simulator(pricing, "o1", instance_id=IID)
    sim.complete(by_name(sim, "Quote"), "q")
    assert types(sim.last_turn) == [
        "ActivityCompleted",
        "PatchApplied",
        "ActivityScheduled",
    ]
    sim.complete(by_name(sim, "PriceV2"), "p2")
    sim.complete(by_name(sim, "Receipt"), "r")
    assert sim.result.output == {
        "price": "p2",
        "receipt": "r",
        "decisions": [True, True],
    }
    assert markers(sim.history) == [(4, "price-v2", "0")]
    assert activities(sim.history) == ["Quote", "PriceV2", "Receipt"]
    check_replay(pricing, sim)
    assert new_events_after_replay(pricing, sim.history, IID) == []


def test_markers_are_written_in_emission_order() -> None:
    async def body(ctx: OrchestrationContext) -> list[bool]:
        ctx.schedule_activity("Before")
        first = ctx.patched("a")
        ctx.set_custom_status("between")
        second = ctx.patched("b")
        await ctx.schedule_activity("After")
        return [first, second, ctx.patched("a"), ctx.patched("b")]

    sim = Simulator(body, instance_id=IID)
    assert types(sim.history)[1:] == [
        "ActivityScheduled",
        "PatchApplied",
        "CustomStatusUpdated",
        "PatchApplied",
        "ActivityScheduled",
    ]
    sim.complete(by_name(sim, "Before"))
    sim.complete(by_name(sim, "After"))
    assert sim.result.output == [True, True, True, True]
    assert markers(sim.history) == [(3, "a", "0"), (5, "b", "0")]
    check_replay(body, sim)


def test_the_decision_holds_across_turns_and_restarts() -> None:
    async def body(ctx: OrchestrationContext) -> list[bool]:
        seen = [ctx.patched("p")]
        for _ in range(3):
            await ctx.schedule_timer(1)
            seen.append(ctx.patched("p"))
        return seen

    sim = Simulator(body, instance_id=IID)
    for _ in range(3):
        sim.restart()
        sim.advance(1)
    assert sim.result.output == [True] * 4
    assert len(markers(sim.history)) == 1
    check_replay(body, sim)


# ---------------------------------------------------- old instances, deploys


def test_a_history_from_before_the_patch_replays_to_false() -> None:
    sim = Simulator(pricing, "o1", instance_id=IID)  # v1 code
    run_to_end(sim)
    old = sim.history
    assert activities(old) == ["Quote", "Price", "Receipt"]

    VERSION["code"] = 2
    result = replay(pricing, old, instance_id=IID)
    assert result.status == "Completed"
    assert result.output["decisions"] == [False, False]
    assert new_events_after_replay(pricing, old, IID) == []


def test_an_old_instance_past_the_point_goes_on_down_the_old_branch() -> None:
    sim = Simulator(pricing, "o1", instance_id=IID)
    sim.complete(by_name(sim, "Quote"), "q")  # v1 scheduled Price: passed it
    deploy(sim, 2)
    sim.complete(by_name(sim, "Price"), "p1")
    # The later check of the same id is answered False too: no marker.
    assert types(sim.last_turn) == ["ActivityCompleted", "ActivityScheduled"]
    sim.complete(by_name(sim, "Receipt"), "r")
    assert sim.result.output == {
        "price": "p1",
        "receipt": "r",
        "decisions": [False, False],
    }
    assert markers(sim.history) == []
    check_replay(pricing, sim)
    assert new_events_after_replay(pricing, sim.history, IID) == []


def test_an_old_instance_short_of_the_point_takes_the_new_branch() -> None:
    sim = Simulator(pricing, "o1", instance_id=IID)  # v1: Quote pending
    deploy(sim, 2)
    sim.complete(by_name(sim, "Quote"), "q")
    assert markers(sim.history) == [(4, "price-v2", "0")]
    sim.complete(by_name(sim, "PriceV2"), "p2")
    sim.complete(by_name(sim, "Receipt"), "r")
    assert sim.result.output["decisions"] == [True, True]
    check_replay(pricing, sim)


def test_new_and_old_instances_each_replay_on_their_branch_after_restarts() -> None:
    old = Simulator(pricing, "o1", instance_id="old")
    old.complete(by_name(old, "Quote"), "q")
    deploy(old, 2)
    new = Simulator(pricing, "o2", instance_id="new")
    for sim in (old, new):
        for name in ("Quote", "Price", "PriceV2", "Receipt"):
            found = [p for p in sim.pending() if p.name == name]
            if found:
                sim.restart()  # every turn on a driver rebuilt from history
                sim.complete(found[0].event_id, name)
    assert old.result.output["decisions"] == [False, False]
    assert new.result.output["decisions"] == [True, True]
    assert activities(old.history) == ["Quote", "Price", "Receipt"]
    assert activities(new.history) == ["Quote", "PriceV2", "Receipt"]


# ---------------------------------------------------------------- deprecate


def test_removing_the_call_later_skips_the_markers() -> None:
    VERSION["code"] = 2
    sim = Simulator(pricing, "o1", instance_id=IID)
    sim.complete(by_name(sim, "Quote"), "q")
    sim.complete(by_name(sim, "PriceV2"), "p2")
    assert markers(sim.history) == [(4, "price-v2", "0")]
    deploy(sim, 3)  # the call and the old branch deleted
    sim.complete(by_name(sim, "Receipt"), "r")
    assert sim.result.status == "Completed"
    assert new_events_after_replay(pricing, sim.history, IID) == []
    assert replay(pricing, sim.history, instance_id=IID).output["price"] == "p2"


def test_removing_the_old_branch_too_early_fails_replay_of_old_histories() -> None:
    sim = Simulator(pricing, "o1", instance_id=IID)
    sim.complete(by_name(sim, "Quote"), "q")  # v1: Price scheduled
    VERSION["code"] = 3
    with pytest.raises(NondeterminismError, match=r"Price.*PriceV2"):
        replay(pricing, sim.history, instance_id=IID)


def test_a_marker_counts_for_the_whole_execution_wherever_code_asks() -> None:
    """Replay answers from the execution's markers, not from positions."""
    where = {"early": False}

    async def body(ctx: OrchestrationContext) -> list[Any]:
        seen: list[Any] = []
        if where["early"]:
            seen.append(ctx.patched("p"))
        await ctx.schedule_activity("A")
        if not where["early"]:
            seen.append(ctx.patched("p"))
        seen.append(await ctx.schedule_activity("B"))
        return seen

    sim = Simulator(body, instance_id=IID)
    sim.complete(by_name(sim, "A"))
    sim.complete(by_name(sim, "B"), "b")
    where["early"] = True  # the call moved before A
    assert replay(body, sim.history, instance_id=IID).output == [True, "b"]


# --------------------------------------------------------- tasks and scopes


async def _fast_or_slow(ctx: OrchestrationContext, tag: str) -> list[Any]:
    await ctx.schedule_timer(1 if tag == "a" else 2)
    if ctx.patched("fast-path"):
        return [True, await ctx.schedule_activity("Fast", tag)]
    return [False, await ctx.schedule_activity("Slow", tag)]


async def two_blocks(ctx: OrchestrationContext) -> list[Any]:
    first = durable_async(ctx, _fast_or_slow(ctx, "a"))
    second = durable_async(ctx, _fast_or_slow(ctx, "b"))
    return list(await ctx.join(first, second))


def test_concurrent_tasks_share_one_decision_and_one_marker() -> None:
    sim = Simulator(two_blocks, instance_id=IID)
    sim.advance(1)  # task a asks first
    sim.restart()
    sim.advance(1)  # task b asks in a later turn, on a rebuilt driver
    for work in sim.pending("activity"):
        sim.complete(work.event_id, work.name)
    assert sim.result.output == [[True, "Fast"], [True, "Fast"]]
    assert markers(sim.history) == [(5, "fast-path", "0.1")]
    check_replay(two_blocks, sim)


def test_tasks_asking_in_one_turn_record_the_first_asker() -> None:
    sim = Simulator(two_blocks, instance_id=IID)
    with sim.turn():
        for work in sim.pending("timer"):
            sim.fire(work.event_id)
    scopes = [scope for _, _, scope in markers(sim.history)]
    assert scopes == ["0.1"]
    check_replay(two_blocks, sim)


def test_a_task_replaying_a_pre_patch_history_answers_false_for_all() -> None:
    VERSION["code"] = 1

    async def versioned(ctx: OrchestrationContext) -> list[Any]:
        async def block(tag: str) -> Any:
            await ctx.schedule_timer(1 if tag == "a" else 5)
            if VERSION["code"] == 2 and ctx.patched("fast-path"):
                return await ctx.schedule_activity("Fast", tag)
            return await ctx.schedule_activity("Slow", tag)

        return list(
            await ctx.join(
                durable_async(ctx, block("a")), durable_async(ctx, block("b"))
            )
        )

    sim = Simulator(versioned, instance_id=IID)
    sim.advance(1)  # task a passed the point under v1
    VERSION["code"] = 2
    sim.restart()
    sim.advance(4)  # task b reaches it live: the execution already said False
    for work in sim.pending("activity"):
        sim.complete(work.event_id, work.input)
    assert activities(sim.history) == ["Slow", "Slow"]
    assert markers(sim.history) == []
    check_replay(versioned, sim)


def test_patched_in_a_cancelled_task_is_answered_not_refused() -> None:
    cleanups: list[bool] = []

    async def loser(ctx: OrchestrationContext) -> str:
        try:
            return str(await ctx.schedule_wait("never"))
        finally:
            cleanups.append(ctx.patched("cleanup-v2"))

    async def body(ctx: OrchestrationContext) -> Any:
        won = await ctx.select2(ctx.schedule_timer(1), durable_async(ctx, loser(ctx)))
        return [won[0], ctx.patched("cleanup-v2")]

    sim = Simulator(body, instance_id=IID)
    sim.advance(1)
    assert sim.result.output == [0, True]
    assert cleanups == [True]
    assert markers(sim.history) == [(5, "cleanup-v2", "0.1")]
    check_replay(body, sim)
    assert cleanups == [True, True]


# --------------------------------------------------- executions and misuse


def test_each_execution_decides_afresh() -> None:
    async def body(ctx: OrchestrationContext, round: int) -> Any:
        if round == 1:
            ctx.continue_as_new(2)
        return ctx.patched("p")

    old = [
        h.OrchestrationStarted(
            event_id=1, timestamp=1.0, name="body", version="1", input=1
        ),
        h.OrchestrationContinuedAsNew(event_id=2, timestamp=1.0, input=2),
    ]
    assert replay(body, old).status == "ContinuedAsNew"
    second = Simulator(body, 2, instance_id=IID)  # the next execution, live
    assert second.result.output is True
    assert markers(second.history) == [(2, "p", "0")]


@pytest.mark.parametrize("bad", ["", 7, None, "x\x00y", "p" * 513])
def test_a_bad_patch_id_is_a_value_error(bad: Any) -> None:
    async def body(ctx: OrchestrationContext) -> bool:
        return ctx.patched(bad)

    sim = Simulator(body, instance_id=IID)
    assert sim.result.status == "Failed"
    assert sim.result.error is not None
    assert sim.result.error.type == "ValueError"
    assert "patch id" in sim.result.error.message
    assert markers(sim.history) == []


def test_patched_outside_orchestration_code_is_refused() -> None:
    kept: list[OrchestrationContext] = []

    async def body(ctx: OrchestrationContext) -> None:
        kept.append(ctx)

    Simulator(body, instance_id=IID)
    with pytest.raises(RuntimeError, match="orchestration code"):
        kept[0].patched("p")


def test_the_marker_round_trips_as_json() -> None:
    marker = h.PatchApplied(event_id=4, timestamp=2.5, patch_id="p", scope="0.2")
    text = h.event_to_json(marker)
    assert json.loads(text) == {
        "type": "PatchApplied",
        "event_id": 4,
        "timestamp": 2.5,
        "patch_id": "p",
        "scope": "0.2",
    }
    assert h.event_from_json(text) == marker
    root = h.PatchApplied(event_id=2, timestamp=1.0, patch_id="p")
    assert "scope" not in h.event_to_json(root)
    assert h.PatchApplied.role == "marker"
    assert h.PatchApplied in h.MARKER_TYPES
    assert h.PatchApplied not in h.SCHEDULING_TYPES


def test_rows_show_markers_with_their_scope() -> None:
    async def body(ctx: OrchestrationContext) -> bool:
        return ctx.patched("p")

    sim = Simulator(body, instance_id=IID)
    assert rows(sim.history)[1] == (2, "PatchApplied", None, None, "0")
