"""Poison counts the instance's failures, not the storage's.

A dispatch whose commit (or history read) fails with `StorageError` -- a
disk full, a lost connection -- is the storage's fault: however many of
them there are, the instance goes on once the storage is back, and is not
failed as ``PoisonMessage`` (seen when a full disk refused the commits but
not the smaller fetches, probe F11). A turn the storage refuses on its own
still becomes poison (`test_probe_regressions`).
"""

from __future__ import annotations

from _faulty import FaultyProvider

import perdure
from perdure import ActivityContext, OrchestrationContext
from perdure.providers import open_provider

MAX_ATTEMPTS = 2
# Well beyond MAX_ATTEMPTS, each one a fetch of the instance.
FAILED_COMMITS = 3 * MAX_ATTEMPTS
FAILED_READS = MAX_ATTEMPTS + 2  # each retried after a growing backoff


@perdure.activity(name="Twice")
async def twice(ctx: ActivityContext, n: int) -> int:
    return 2 * n


@perdure.orchestration(name="TwoSteps")
async def two_steps(ctx: OrchestrationContext, n: int) -> int:
    first: int = await ctx.schedule_activity(twice, n)
    second: int = await ctx.schedule_activity(twice, first)
    return second


def _runtime(faulty: FaultyProvider) -> perdure.Runtime:
    return perdure.Runtime(
        faulty,
        orchestrations=[two_steps],
        activities=[twice],
        lock_timeout=0.2,  # a failed commit keeps the lock until then
        max_attempts=MAX_ATTEMPTS,
        instance_cache_size=0,  # every turn after the first reads history
        poll_interval=0.05,
        cancellation_grace_period=0.1,
    )


async def test_failed_commits_do_not_make_an_instance_poison(
    storage_url: str,
) -> None:
    faulty = FaultyProvider(open_provider(storage_url))
    for n in range(1, FAILED_COMMITS + 1):
        faulty.fail_nth("commit_turns", n)
    async with faulty, _runtime(faulty) as rt:
        await rt.client.start_orchestration("c1", "TwoSteps", 5)
        state = await rt.client.wait_for_orchestration("c1", timeout=30)
    assert (state.status, state.output) == ("Completed", 20), state.error
    assert faulty.faults_of("commit_turns") == FAILED_COMMITS


async def test_failed_history_reads_do_not_make_an_instance_poison(
    storage_url: str,
) -> None:
    faulty = FaultyProvider(open_provider(storage_url))
    for n in range(1, FAILED_READS + 1):
        faulty.fail_nth("read_history", n)
    async with faulty, _runtime(faulty) as rt:
        await rt.client.start_orchestration("r1", "TwoSteps", 5)
        state = await rt.client.wait_for_orchestration("r1", timeout=30)
    assert (state.status, state.output) == ("Completed", 20), state.error
    assert faulty.faults_of("read_history") == FAILED_READS
