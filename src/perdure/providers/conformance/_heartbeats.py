"""Conformance: the optional heartbeat verb (`SavesHeartbeats`).

A provider without ``save_activity_heartbeats`` skips these tests; one that
has it must keep every rule below.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from perdure.providers import ActivityHeartbeat, ActivityItem, Provider, SavesHeartbeats
from perdure.providers.conformance._fixtures import Backend, Kit, Run
from perdure.providers.conformance._queues import result, schedule, work

__all__ = [
    "test_a_second_provider_object_reads_the_details",
    "test_details_come_back_after_a_retry",
    "test_details_survive_lease_expiry",
    "test_heartbeat_does_not_extend_the_lease",
    "test_heartbeat_with_a_lost_lease_writes_nothing",
]


def saver(p: Provider) -> SavesHeartbeats:
    if not isinstance(p, SavesHeartbeats):
        pytest.skip("the provider has no save_activity_heartbeats (optional verb)")
    return p


def beat(item: ActivityItem, details: object) -> ActivityHeartbeat:
    return ActivityHeartbeat(
        id=item.id, lock_token=item.lock_token, details=json.dumps(details)
    )


def details(item: ActivityItem) -> object:
    text = item.heartbeat_details
    return None if text is None else json.loads(text)


def test_details_come_back_after_a_retry(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        s = saver(p)
        await schedule(p, kit, "a", work("a", 2), work("a", 3))
        first, other = await p.fetch_activities(10, kit.lease)
        assert (details(first), details(other)) == (None, None)
        assert await s.save_activity_heartbeats([beat(first, {"n": 1})]) == []
        # The latest details replace the earlier ones; a batch may hold many.
        batch = [beat(first, {"n": 2}), beat(other, "x")]
        assert await s.save_activity_heartbeats(batch) == []
        assert await s.save_activity_heartbeats([]) == []
        await p.abandon_activity(first.id, first.lock_token)
        [again] = await p.fetch_activities(10, kit.lease)
        assert (again.id, again.attempt, details(again)) == (first.id, 2, {"n": 2})
        # Completed: the item and its details are gone.
        await p.complete_activities([result(again), result(other)])
        assert await s.save_activity_heartbeats([beat(again, "late")]) == [again.id]

    run(body)


def test_details_survive_lease_expiry(run: Run, kit: type[Kit]) -> None:
    """A crashed worker's last stored details reach the next attempt."""

    async def body(p: Provider) -> None:
        s = saver(p)
        await schedule(p, kit, "a", work("a", 2))
        [crashed] = await p.fetch_activities(10, 0.2)
        assert await s.save_activity_heartbeats([beat(crashed, [1, 2, 3])]) == []
        await asyncio.sleep(0.3)
        [taken] = await p.fetch_activities(10, kit.lease)
        assert (taken.attempt, details(taken)) == (2, [1, 2, 3])

    run(body)


def test_heartbeat_with_a_lost_lease_writes_nothing(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        s = saver(p)
        await schedule(p, kit, "a", work("a", 2), work("a", 3))
        old, held = await p.fetch_activities(10, 0.2)
        await asyncio.sleep(0.3)
        new, _ = await p.fetch_activities(10, kit.lease)
        assert new.id == old.id
        # The expired holder's beat is refused; the live one in the same
        # batch is written.
        lost = await s.save_activity_heartbeats([beat(old, "stale"), beat(new, "ok")])
        assert lost == [old.id]
        await p.abandon_activity(new.id, new.lock_token)
        [again] = [i for i in await p.fetch_activities(10, kit.lease) if i.id == new.id]
        assert details(again) == "ok"
        assert held.id != again.id

    run(body)


def test_heartbeat_does_not_extend_the_lease(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        s = saver(p)
        await schedule(p, kit, "a", work("a", 2))
        [item] = await p.fetch_activities(10, 0.3)
        await asyncio.sleep(0.2)
        assert await s.save_activity_heartbeats([beat(item, "alive")]) == []
        await asyncio.sleep(0.2)
        [taken] = await p.fetch_activities(10, kit.lease)
        assert (taken.attempt, details(taken)) == (2, "alive")

    run(body)


def test_a_second_provider_object_reads_the_details(
    backend: Backend, run: Run, kit: type[Kit]
) -> None:
    """Details written by one process reach another (a crash takeover)."""
    if not backend.shared:
        pytest.skip("a private in-memory database has nobody to share with")

    async def body(p: Provider) -> None:
        s = saver(p)
        await schedule(p, kit, "a", work("a", 2))
        [item] = await p.fetch_activities(10, kit.lease)
        assert await s.save_activity_heartbeats([beat(item, {"page": 7})]) == []
        await p.abandon_activity(item.id, item.lock_token)
        other = backend.make()
        await other.open()
        try:
            [taken] = await other.fetch_activities(10, kit.lease)
            assert details(taken) == {"page": 7}
        finally:
            await other.close()

    run(body)
