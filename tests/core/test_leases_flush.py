"""Activity results are written even when the task that acknowledged dies.

Regression: the task acknowledging a result also flushed every result queued
behind it. When that task was cancelled mid-write (its lease reported lost
while the write was in flight, then its grace period ran out), the batch
went back to the queue and nobody wrote it, nor anything acknowledged
meanwhile, until some later acknowledgement came. The random-fault suite
caught it as instances waiting for activities that had run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from perdure._leases import Leases
from perdure.providers import ActivityItem, ActivityResult, Message, Provider


class BlockingStore:
    """A provider whose first *gated* completion writes each wait for release."""

    def __init__(self, gated: int = 1) -> None:
        self.releases = [asyncio.Event() for _ in range(gated)]
        self.release = self.releases[0]
        self.written: list[int] = []
        self.calls = 0

    async def complete_activities(self, results: Sequence[ActivityResult]) -> None:
        self.calls += 1
        if self.calls <= len(self.releases):
            await self.releases[self.calls - 1].wait()
        self.written.extend(r.id for r in results)


def item(n: int) -> ActivityItem:
    return ActivityItem(
        id=n,
        instance_id=f"i{n}",
        execution_id=1,
        event_id=2,
        name="act",
        body="{}",
        lock_token=f"t{n}",
        attempt=1,
    )


DONE = Message(kind="activity_completed", body="{}")


async def test_a_cancelled_acknowledger_strands_nothing() -> None:
    store = BlockingStore()
    leases = Leases(cast(Provider, store), lock_timeout=30.0)
    first = asyncio.create_task(leases.acknowledge(item(1), DONE))
    await asyncio.sleep(0.01)  # its write is in flight
    second = asyncio.create_task(leases.acknowledge(item(2), DONE))
    await asyncio.sleep(0.01)
    first.cancel()  # e.g. its grace period after a lost lease ran out
    await asyncio.sleep(0.01)
    store.release.set()
    # No third acknowledgement comes: both results are written anyway.
    await asyncio.wait_for(second, 2.0)
    assert sorted(store.written) == [1, 2]
    (outcome,) = await asyncio.gather(first, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)


async def test_close_waits_for_a_write_in_flight() -> None:
    store = BlockingStore()
    leases = Leases(cast(Provider, store), lock_timeout=30.0)
    acker = asyncio.create_task(leases.acknowledge(item(1), DONE))
    await asyncio.sleep(0.01)
    acker.cancel()
    asyncio.get_running_loop().call_later(0.05, store.release.set)
    await leases.close()
    assert store.written == [1]


async def test_an_acknowledger_waits_for_its_own_write_only() -> None:
    # Regression (issue 17): every acknowledger waited for the flusher task
    # itself, which under steady load goes on to write the results that came
    # meanwhile: an activity kept its worker slot one or more commits after
    # its result was stored, so a fused batch over half the worker's limit
    # could not claim the work it scheduled (it was enqueued and fetched).
    store = BlockingStore(gated=2)
    leases = Leases(cast(Provider, store), lock_timeout=30.0)
    first = asyncio.create_task(leases.acknowledge(item(1), DONE))
    await asyncio.sleep(0.01)  # its write is in flight
    second = asyncio.create_task(leases.acknowledge(item(2), DONE))
    await asyncio.sleep(0.01)
    store.releases[0].set()
    await asyncio.sleep(0.01)  # the flusher went on to write the second
    assert store.written == [1]
    assert first.done() and not second.done()
    store.releases[1].set()
    await asyncio.wait_for(second, 2.0)
    assert store.written == [1, 2]
