"""A runtime driven through a few hundred random storage faults.

Every instance runs activities, a timer, a `durable_async` block raced
against a timer, and a sub-orchestration, on a `FaultyProvider` that fails
calls before or after they reach storage (seeded) and slows some down.
Nothing may be lost or duplicated: every instance completes with the right
output, each history answers every scheduled activity exactly once, and an
activity runs more than once only after an acknowledgement was lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from _faulty import FaultyProvider

import perdure
from perdure import ActivityContext, OrchestrationContext, events as h
from perdure.providers import open_provider

SEED = int(os.environ.get("PERDURE_FAULT_SEED", "20261201"))
WAVE = 20  # instances started together
MAX_WAVES = 25  # only used when the budget is not spent yet
BUDGET = 250  # random faults in all; afterwards every call passes

#: Runs of each activity input, across the whole test (side effects).
RUNS: Counter[str] = Counter()


@perdure.activity(name="Add")
async def add(ctx: ActivityContext, job: list[Any]) -> int:
    key, value, plus = job
    RUNS[key] += 1
    return int(value) + int(plus)


async def _two_steps(ctx: OrchestrationContext, tag: str, value: int) -> int:
    x = await ctx.schedule_activity(add, [f"{tag}/b", value, 10])
    return await ctx.schedule_activity(add, [f"{tag}/c", x, 100])


@perdure.orchestration(name="Sub")
async def sub(ctx: OrchestrationContext, job: list[Any]) -> int:
    tag, value = job
    return await ctx.schedule_activity(add, [f"{tag}/d", value, 1000])


@perdure.orchestration(name="Work")
async def work(ctx: OrchestrationContext, n: int) -> int:
    tag = ctx.instance_id
    a = await ctx.schedule_activity("Add", [f"{tag}/a", n, 1])
    await ctx.schedule_timer(0.05)
    block = ctx.durable_async(_two_steps(ctx, tag, a))
    index, b = await ctx.select2(block, ctx.schedule_timer(600))
    assert index == 0
    output: int = await ctx.schedule_sub_orchestration("Sub", [tag, b])
    return output


def _check_history(iid: str, history: Sequence[perdure.Event]) -> int:
    """Assert every scheduled activity is answered once; return how many."""
    scheduled = [e.event_id for e in history if isinstance(e, h.ActivityScheduled)]
    answers = Counter(
        e.source_event_id or 0
        for e in history
        if isinstance(e, h.ActivityCompleted | h.ActivityFailed)
    )
    assert not [e for e in history if isinstance(e, h.ActivityFailed)], iid
    assert sorted(answers) == sorted(scheduled), (iid, answers, scheduled)
    assert set(answers.values()) <= {1}, (iid, answers)
    return len(scheduled)


@pytest.mark.slow
async def test_random_storage_faults_lose_and_duplicate_nothing(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)  # thousands of expected tracebacks
    RUNS.clear()
    faulty = FaultyProvider(
        open_provider(storage_url),
        seed=SEED,
        rate=0.2,
        # The loops sleep a second after a failed fetch: fewer of those.
        rates={"fetch_orchestrations": 0.02, "fetch_routed_activities": 0.02},
        budget=BUDGET,
        slow_rate=0.05,
        max_delay=0.2,
    )
    rt = perdure.Runtime(
        faulty,
        orchestrations=[work, sub],
        activities=[add],
        orchestration_concurrency=1,  # small batches: more calls, more faults
        activity_concurrency=4,
        lock_timeout=1.0,
        max_attempts=1000,  # faults must not turn work into poison here
        poll_interval=0.05,
        cancellation_grace_period=0.1,
    )
    started = 0
    # The runtime leaves a provider it was given open: ``faulty`` closes it.
    async with perdure.Client(storage_url) as client, faulty, rt:
        # Waves of instances until the fault budget is spent.
        while faulty.injected < BUDGET and started < WAVE * MAX_WAVES:
            ids = [f"w{n:03d}" for n in range(started, started + WAVE)]
            for iid in ids:
                await client.start_orchestration(iid, "Work", int(iid[1:]))
            started += WAVE
            states = await asyncio.gather(
                *(client.wait_for_orchestration(iid, timeout=60) for iid in ids)
            )
            for state in states:
                n = int(state.instance_id[1:])
                assert (state.status, state.output) == ("Completed", n + 1111), state
        everything = await client.list_instances(limit=10 * started)
        assert len(everything) == 2 * started
        assert {s.status for s in everything} == {"Completed"}
        scheduled = 0
        for state in everything:
            history = await client.get_history(state.instance_id)
            scheduled += _check_history(state.instance_id, history)
    assert scheduled == 4 * started
    assert faulty.injected >= BUDGET, (started, faulty.faults)
    # Every activity ran; more than once only after an acknowledgement (or a
    # lease renewal) failed, at most once per such fault.
    assert len(RUNS) == 4 * started
    extra = sum(count - 1 for count in RUNS.values())
    lost_acks = faulty.faults_of("complete_activities")
    lost_acks += faulty.faults_of("renew_activity_locks")
    assert extra <= lost_acks, (extra, faulty.faults)
    print(f"seed {SEED}: {started} instances, {dict(faulty.faults)}, {extra} re-runs")
