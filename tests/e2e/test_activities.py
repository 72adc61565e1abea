"""RetryPolicy, per-attempt timeouts and what an activity sees in its context."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from _helpers import (
    Scenario,
    check_replay,
    eventually,
    of_type,
    outcome,
    run_to_end,
    runtime,
    types,
)

import perdure
from perdure import events as h

#: Attempt numbers (or other observations) per instance id.
SEEN: dict[str, list[object]] = {}

FAST_RETRY = perdure.RetryPolicy(max_attempts=3, initial_interval=0.01, backoff=2.0)


def note(ctx: perdure.ActivityContext, what: object) -> None:
    SEEN.setdefault(ctx.instance_id, []).append(what)


@perdure.activity
def flaky(ctx: perdure.ActivityContext, fail_until: int) -> dict[str, object]:
    note(ctx, ctx.attempt)
    if ctx.attempt < fail_until:
        raise ConnectionError(f"attempt {ctx.attempt} failed")
    return {
        "attempt": ctx.attempt,
        "name": ctx.activity_name,
        "instance": ctx.instance_id,
        "execution": ctx.execution_id,
    }


@perdure.activity
async def charge(ctx: perdure.ActivityContext) -> None:
    note(ctx, ctx.attempt)
    raise ValueError("card declined")


@perdure.activity
async def sluggish(ctx: perdure.ActivityContext, fast_from: int) -> int:
    note(ctx, ctx.attempt)
    if ctx.attempt < fast_from:
        await asyncio.sleep(30)  # cut short by the per-attempt timeout
    return ctx.attempt


@perdure.activity
async def stubborn(ctx: perdure.ActivityContext) -> None:
    # Ignores the cooperative signal: its task is cancelled after the grace period.
    note(ctx, "started")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        note(ctx, f"task cancelled, flag {ctx.is_cancelled()}")
        raise


@perdure.activity
def polling(ctx: perdure.ActivityContext) -> str:
    # A sync activity can only poll the flag.
    note(ctx, "started")
    deadline = time.monotonic() + 15
    while not ctx.is_cancelled() and time.monotonic() < deadline:
        time.sleep(0.005)
    note(ctx, f"saw cancel {ctx.is_cancelled()}")
    return "ignored"


@perdure.orchestration
async def retrying(
    ctx: perdure.OrchestrationContext, args: dict[str, object]
) -> object:
    kind = args["kind"]
    if kind == "flaky":
        until = args["until"]
        assert isinstance(until, int)
        return await ctx.schedule_activity(flaky, until, retry=FAST_RETRY)
    if kind == "charge":
        try:
            await ctx.schedule_activity(charge, retry=FAST_RETRY)
        except perdure.ActivityFailed as exc:
            return ["failed", exc.name, exc.type, exc.message, str(exc)]
    if kind == "timeout":
        policy = FAST_RETRY if args.get("retry") else None
        fast_from = args["fast_from"]
        assert isinstance(fast_from, int)
        try:
            return await ctx.schedule_activity(
                sluggish,
                fast_from,
                retry=policy,
                timeout=timedelta(seconds=0.1),
            )
        except perdure.ActivityFailed as exc:
            return ["failed", exc.type, exc.message]
    if kind == "budget":
        policy = perdure.RetryPolicy(
            max_attempts=50, initial_interval=0.05, timeout=0.3
        )
        try:
            await ctx.schedule_activity(charge, retry=policy)
        except perdure.ActivityFailed as exc:
            return ["failed", exc.message]
    target = stubborn if kind == "stubborn" else polling
    winner, _ = await ctx.select2(
        ctx.schedule_timer(0.05), ctx.schedule_activity(target)
    )
    return winner


ORCHS: list[Callable[..., Any]] = [retrying]
ACTS: list[Callable[..., Any]] = [flaky, charge, sluggish, stubborn, polling]


def scenario_for(args: dict[str, object]) -> Scenario:
    async def scenario(client: perdure.Client, iid: str) -> object:
        SEEN.pop(iid, None)
        state = await run_to_end(client, iid, retrying, args)
        return {"outcome": outcome(state), "seen": SEEN.get(iid)}

    return scenario


async def test_retry_until_success_keeps_history_small(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, scenario_for({"kind": "flaky", "until": 3}), "flaky"
    )
    assert summary["outcome"]["output"] == {
        "attempt": 3,
        "name": "flaky",
        "instance": "flaky-cached",
        "execution": 1,
    }
    assert summary["seen"] == [1, 2, 3]
    assert types(history) == [
        "OrchestrationStarted",
        "ActivityScheduled",
        "ActivityCompleted",
        "OrchestrationCompleted",
    ]


async def test_retries_exhausted_surface_the_original_error(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, scenario_for({"kind": "charge"}), "charge"
    )
    status, name, kind, message, text = summary["outcome"]["output"]
    assert (status, name, kind, message) == (
        "failed",
        "charge",
        "ValueError",
        "card declined",
    )
    assert "card declined" in text
    assert summary["seen"] == [1, 2, 3]
    (failed,) = of_type(history, h.ActivityFailed)
    assert failed.error["message"] == "card declined"
    assert len(of_type(history, h.ActivityScheduled)) == 1


async def test_per_attempt_timeout_fails_without_retry(storage_url: str) -> None:
    summary, _ = await check_replay(
        storage_url,
        ORCHS,
        ACTS,
        scenario_for({"kind": "timeout", "fast_from": 99}),
        "to",
    )
    status, kind, message = summary["outcome"]["output"]
    assert (status, kind) == ("failed", "TimeoutError")
    assert "timed out" in message and "sluggish" in message
    assert summary["seen"] == [1]


async def test_per_attempt_timeout_then_retry_succeeds(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url,
        ORCHS,
        ACTS,
        scenario_for({"kind": "timeout", "fast_from": 2, "retry": True}),
        "tor",
    )
    assert summary["outcome"]["output"] == 2
    assert summary["seen"] == [1, 2]
    assert len(of_type(history, h.ActivityCompleted)) == 1


async def test_retry_policy_total_budget_stops_early(storage_url: str) -> None:
    SEEN.pop("budget", None)
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, "budget", retrying, {"kind": "budget"})
    assert state.output == ["failed", "card declined"]
    assert 1 < len(SEEN["budget"]) < 50


@pytest.mark.parametrize("kind", ["stubborn", "polling"])
async def test_cancelled_activity_is_signalled(storage_url: str, kind: str) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        SEEN.pop(iid, None)
        state = await run_to_end(client, iid, retrying, {"kind": kind})
        await eventually(lambda: len(SEEN.get(iid, [])) == 2, "the activity to stop")
        return {"outcome": outcome(state), "seen": SEEN[iid]}

    summary, history = await check_replay(storage_url, ORCHS, ACTS, scenario, kind)
    assert summary["outcome"]["output"] == 0  # the timer won
    if kind == "stubborn":
        assert summary["seen"] == ["started", "task cancelled, flag True"]
    else:
        assert summary["seen"] == ["started", "saw cancel True"]
    (cancel,) = of_type(history, h.ActivityCancelRequested)
    assert cancel.source_event_id == of_type(history, h.ActivityScheduled)[0].event_id
    assert not of_type(history, h.ActivityCompleted)  # the late result is discarded
