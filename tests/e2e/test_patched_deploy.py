"""A real v1 -> v2 deploy with ``ctx.patched`` (DESIGN §9), on every backend.

Instances start under v1; the runtime stops with them mid-flight; a runtime
with v2 (the same name and version, the change behind
``ctx.patched("discount")``) takes over the same storage:

* ``past``: passed the patch point under v1, goes on down the old branch
  (v2 replays its history to False) and records no marker;
* ``short``: started under v1 but had not reached the point: its first
  live pass takes the new branch and records the marker;
* ``new``: started under v2: new branch, marker;
* ``rounds``: v1 execution 1 passed the point, continues as new under v2:
  execution 2 decides afresh (new branch, its own marker).

Then the call is deleted (v3, new branch only): histories with markers
replay and the instances still running finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from _helpers import WAIT, check_replay, eventually, runtime

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async
from perdure._core import _history as h
from perdure._core._history import ActivityScheduled, EventWaitStarted, PatchApplied
from perdure._tree import render_history
from perdure.testing import replay


@perdure.activity(name="Price")
async def price(ctx: ActivityContext, order: str) -> int:
    return 100


@perdure.activity(name="DiscountedPrice")
async def discounted_price(ctx: ActivityContext, order: str) -> int:
    return 90


ACTIVITIES = [price, discounted_price]


# v1: before the patch.
@perdure.orchestration(name="Checkout")
async def checkout_v1(ctx: OrchestrationContext, order: str) -> dict[str, Any]:
    await ctx.schedule_wait("start")
    amount = await ctx.schedule_activity(price, order)
    await ctx.schedule_wait("ship")
    return {"amount": amount, "branch": "old"}


@perdure.orchestration(name="Rounds")
async def rounds_v1(ctx: OrchestrationContext, round: int) -> dict[str, Any]:
    amount = await ctx.schedule_activity(price, str(round))
    if round == 1:
        await ctx.schedule_wait("next")
        ctx.continue_as_new(2)
    return {"amount": amount, "branch": "old"}


# v2: the change behind ctx.patched.
@perdure.orchestration(name="Checkout")
async def checkout_v2(ctx: OrchestrationContext, order: str) -> dict[str, Any]:
    await ctx.schedule_wait("start")
    if ctx.patched("discount"):
        amount, branch = await ctx.schedule_activity(discounted_price, order), "new"
    else:
        amount, branch = await ctx.schedule_activity(price, order), "old"
    await ctx.schedule_wait("ship")
    return {"amount": amount, "branch": branch}


@perdure.orchestration(name="Rounds")
async def rounds_v2(ctx: OrchestrationContext, round: int) -> dict[str, Any]:
    if ctx.patched("discount"):
        amount, branch = await ctx.schedule_activity(discounted_price, "r"), "new"
    else:
        amount, branch = await ctx.schedule_activity(price, str(round)), "old"
    if round == 1:
        await ctx.schedule_wait("next")
        ctx.continue_as_new(2)
    return {"amount": amount, "branch": branch}


# v3: the call and the old branch deleted.
@perdure.orchestration(name="Checkout")
async def checkout_v3(ctx: OrchestrationContext, order: str) -> dict[str, Any]:
    await ctx.schedule_wait("start")
    amount = await ctx.schedule_activity(discounted_price, order)
    await ctx.schedule_wait("ship")
    return {"amount": amount, "branch": "new"}


async def waiting_for(client: perdure.Client, iid: str, name: str) -> None:
    """Wait until the instance's latest execution waits for event *name*."""

    async def probe() -> bool:
        history = await client.get_history(iid)
        return any(isinstance(e, EventWaitStarted) and e.name == name for e in history)

    await eventually(probe, f"{iid} waiting for {name!r}")


def markers(history: Iterable[perdure.Event]) -> list[tuple[str, str]]:
    return [(e.patch_id, e.scope) for e in history if isinstance(e, PatchApplied)]


def scheduled(history: Iterable[perdure.Event]) -> list[str]:
    return [e.name for e in history if isinstance(e, ActivityScheduled)]


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "replay-every-turn"])
async def test_v1_instances_keep_their_branch_after_a_v2_deploy(
    storage_url: str, cache: bool
) -> None:
    # ---- v1 runs; stopped with every instance mid-flight.
    async with runtime(storage_url, [checkout_v1, rounds_v1], ACTIVITIES) as rt:
        client = rt.client
        for iid in ("past", "short"):
            await client.start_orchestration(iid, "Checkout", iid)
        await client.start_orchestration("rounds", "Rounds", 1)
        await waiting_for(client, "past", "start")
        await client.raise_event("past", "start")
        await waiting_for(client, "past", "ship")  # past the point, under v1
        await waiting_for(client, "short", "start")  # short of it
        await waiting_for(client, "rounds", "next")  # execution 1 past it

    # ---- v2 takes over the same storage; a new instance starts.
    options: dict[str, Any] = {} if cache else {"instance_cache_size": 0}
    v2: list[Callable[..., Any]] = [checkout_v2, rounds_v2]
    async with runtime(storage_url, v2, ACTIVITIES, **options) as rt:
        client = rt.client
        await client.start_orchestration("new", "Checkout", "new")
        for iid in ("short", "new"):
            await waiting_for(client, iid, "start")
            await client.raise_event(iid, "start")
            await waiting_for(client, iid, "ship")
        for iid in ("past", "short", "new"):
            await client.raise_event(iid, "ship")
        await client.raise_event("rounds", "next")
        states = {
            iid: await client.wait_for_orchestration(iid, timeout=WAIT)
            for iid in ("past", "short", "new", "rounds")
        }
        histories = {iid: await client.get_history(iid) for iid in states}
        first_round = await client.get_history("rounds", execution_id=1)

    assert {iid: (s.status, s.output) for iid, s in states.items()} == {
        "past": ("Completed", {"amount": 100, "branch": "old"}),
        "short": ("Completed", {"amount": 90, "branch": "new"}),
        "new": ("Completed", {"amount": 90, "branch": "new"}),
        "rounds": ("Completed", {"amount": 90, "branch": "new"}),
    }
    assert states["rounds"].execution_id == 2
    assert markers(histories["past"]) == []
    assert scheduled(histories["past"]) == ["Price"]
    for iid in ("short", "new", "rounds"):
        assert markers(histories[iid]) == [("discount", "0")], iid
        assert scheduled(histories[iid]) == ["DiscountedPrice"], iid
    assert markers(first_round) == []
    assert scheduled(first_round) == ["Price"]

    # The stored histories replay offline against v2, unchanged.
    for iid in ("past", "short", "new"):
        result = replay(checkout_v2, histories[iid], instance_id=iid)
        assert result.output == states[iid].output, iid
    assert "patched 'discount'  ✓ new code" in render_history(histories["new"])
    assert "patched" not in render_history(histories["past"])


async def test_deleting_the_call_later_keeps_histories_with_markers_replaying(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [checkout_v2], ACTIVITIES) as rt:
        await rt.client.start_orchestration("o", "Checkout", "o")
        await waiting_for(rt.client, "o", "start")
        await rt.client.raise_event("o", "start")
        await waiting_for(rt.client, "o", "ship")

    # v3: no instance from before the patch is left; the call is deleted.
    async with runtime(
        storage_url, [checkout_v3], ACTIVITIES, instance_cache_size=0
    ) as rt:
        await rt.client.raise_event("o", "ship")
        state = await rt.client.wait_for_orchestration("o", timeout=WAIT)
        history = await rt.client.get_history("o")
    assert (state.status, state.output) == (
        "Completed",
        {"amount": 90, "branch": "new"},
    )
    assert markers(history) == [("discount", "0")]
    assert replay(checkout_v3, history, instance_id="o").status == "Completed"


# --------------------------------------------- replay: cached == replayed


async def _block(ctx: OrchestrationContext) -> bool:
    await ctx.schedule_timer(0.05)
    return ctx.patched("block-v2")


async def _loser(ctx: OrchestrationContext, trail: list[bool]) -> None:
    try:
        await ctx.schedule_wait("never")
    finally:
        trail.append(ctx.patched("cleanup-v2"))


@perdure.orchestration(name="PatchedTour")
async def patched_tour(ctx: OrchestrationContext, round: int) -> dict[str, Any]:
    """Patches in a block, in a select loser's finally, and across rounds."""
    trail: list[bool] = []
    first = ctx.patched("tour-v2")
    block = durable_async(ctx, _block(ctx))
    won = await ctx.select2(block, durable_async(ctx, _loser(ctx, trail)))
    amount = await ctx.schedule_activity(discounted_price if first else price, "t")
    if round == 1:
        ctx.continue_as_new(2)
    return {"won": list(won), "trail": trail, "amount": amount, "again": first}


async def tour_scenario(client: perdure.Client, iid: str) -> dict[str, Any]:
    await client.start_orchestration(iid, "PatchedTour", 1)
    state = await client.wait_for_orchestration(iid, timeout=WAIT)
    first = await client.get_history(iid, execution_id=1)
    second = await client.get_history(iid, execution_id=2)
    return {
        "status": state.status,
        "output": state.output,
        "markers": [markers(first), markers(second)],
    }


async def test_patched_histories_are_the_same_cached_or_replayed(
    storage_url: str,
) -> None:
    summary, _ = await check_replay(
        storage_url, [patched_tour], ACTIVITIES, tour_scenario, "tour"
    )
    assert summary["output"] == {
        "won": [0, True],
        "trail": [True],
        "amount": 90,
        "again": True,
    }
    round_markers = [("tour-v2", "0"), ("block-v2", "0.1"), ("cleanup-v2", "0.2")]
    assert summary["markers"] == [round_markers, round_markers]


# ------------------------------------------------------ an older perdure


async def test_an_older_perdure_fails_a_history_with_a_marker_as_poison(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ENGINE_VERSION stays 2, so only the unknown event kind stops an older
    perdure: it never replays such a history down a branch, it cannot read it
    at all (StorageError), retries and fails the instance as poison."""
    async with runtime(sqlite_url, [checkout_v2], ACTIVITIES) as rt:
        await rt.client.start_orchestration("o", "Checkout", "o")
        await waiting_for(rt.client, "o", "start")
        await rt.client.raise_event("o", "start")
        await waiting_for(rt.client, "o", "ship")

    # As if perdure were downgraded to a release without ctx.patched.
    monkeypatch.delitem(h._REGISTRY, "PatchApplied")
    async with runtime(
        sqlite_url, [checkout_v1], ACTIVITIES, max_attempts=2, instance_cache_size=0
    ) as rt:
        await rt.client.raise_event("o", "ship")
        state = await rt.client.wait_for_orchestration("o", timeout=WAIT)
        with pytest.raises(perdure.StorageError, match="PatchApplied"):
            await rt.client.get_history("o")
    assert state.status == "Failed"
    assert state.error is not None
    assert state.error.category == "poison"
    assert "corrupted history event" in caplog.text
