"""Conformance: fused acknowledgements (a turn run without the lock, with acks).

A runtime that holds an activity's result and has the instance's driver
cached commits the turn that result wakes directly: ``lock_token=None``
and the item in ``acks`` (see `perdure.providers.TurnCommit`). These tests
pin the guard: written only when nobody holds the instance, no message of
it is due, the history is the one the turn saw and every item is held.
"""

from __future__ import annotations

import asyncio
import json

from perdure.providers import (
    ActivityClaim,
    ActivityItem,
    OrchestrationItem,
    Provider,
    TurnCommit,
)
from perdure.providers.conformance._fixtures import Kit, Run
from perdure.providers.conformance._queues import result, schedule, work

__all__ = [
    "test_a_fused_turn_commits_and_deletes_its_items",
    "test_a_fused_turn_on_a_locked_instance_is_rejected",
    "test_a_fused_turn_with_a_due_message_is_rejected",
    "test_a_fused_turn_with_a_lost_item_is_rejected",
    "test_a_fused_turn_on_a_stale_history_is_rejected",
    "test_a_locked_turn_may_acknowledge_items_too",
    "test_an_expired_claim_is_fetched_by_others",
    "test_claimed_work_is_inserted_held",
]


def fused(
    item: ActivityItem, history_start: int, *labels: str, **kw: object
) -> TurnCommit:
    """The turn consuming *item*'s result, run without the instance's lock."""
    events = Kit.events(history_start, *labels)
    return TurnCommit(
        instance_id=item.instance_id,
        lock_token=None,
        execution_id=item.execution_id,
        history_start=history_start,
        events=events,
        consumed=[],
        acks=[(item.id, item.lock_token)],
        **kw,  # type: ignore[arg-type]
    )


async def started(p: Provider, kit: type[Kit], iid: str) -> ActivityItem:
    """*iid* created, its first turn (1 event) scheduling one item, held."""
    await schedule(p, kit, iid, work(iid, 2))
    [held] = await p.fetch_activities(10, kit.lease)
    return held


async def unchanged(p: Provider, held: ActivityItem, kit: type[Kit]) -> None:
    """Nothing of a rejected fused turn was written: history, item, messages."""
    assert [json.loads(e) for e in await p.read_history(held.instance_id)] == [
        "started"
    ]
    assert await p.renew_activity_locks([(held.id, held.lock_token)], kit.lease) == []


def test_a_fused_turn_commits_and_deletes_its_items(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        held = await started(p, kit, "a")
        assert await p.commit_turns([fused(held, 1, "done", status="Completed")]) == [
            True
        ]
        history = [json.loads(e) for e in await p.read_history("a")]
        assert history == ["started", "done"]
        # The item is gone (a renewal reports it lost) and no completion
        # message was stored.
        assert await p.renew_activity_locks([(held.id, held.lock_token)], 5) == [
            held.id
        ]
        assert await p.fetch_orchestrations(10, kit.lease) == []
        record = await p.get_instance("a")
        assert record is not None and record.status == "Completed"

    run(body)


def test_a_fused_turn_on_a_locked_instance_is_rejected(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        held = await started(p, kit, "a")
        await p.enqueue("a", kit.message("event", "x"))
        item: OrchestrationItem = await kit.fetch_one(p, "a")  # locks it
        assert await p.commit_turns([fused(held, 1, "done")]) == [False]
        await unchanged(p, held, kit)
        # The lock holder's turn still commits.
        assert await p.commit_turns([kit.turn(item, "event")]) == [True]

    run(body)


def test_a_fused_turn_with_a_due_message_is_rejected(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        held = await started(p, kit, "a")
        # A message due later does not stop it; one due now does: it
        # happened first and must be delivered first (DESIGN §7).
        later = p.clock() + 60
        await p.enqueue("a", kit.message("event", "later", visible_at=later))
        await p.enqueue("a", kit.message("event", "now"))
        assert await p.commit_turns([fused(held, 1, "done")]) == [False]
        await unchanged(p, held, kit)

    run(body)


def test_a_fused_turn_with_a_lost_item_is_rejected(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2))
        [old] = await p.fetch_activities(10, 0.2)
        await asyncio.sleep(0.3)
        [new] = await p.fetch_activities(10, kit.lease)  # the lease moved on
        assert await p.commit_turns([fused(old, 1, "done")]) == [False]
        await unchanged(p, new, kit)

    run(body)


def test_a_fused_turn_on_a_stale_history_is_rejected(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        held = await started(p, kit, "a")
        await p.enqueue("a", kit.message("event", "x"))
        item = await kit.fetch_one(p, "a")
        assert await p.commit_turns([kit.turn(item, "event")]) == [True]
        # History is 2 events now; a turn computed against 1 must not land.
        assert await p.commit_turns([fused(held, 1, "done")]) == [False]
        history = [json.loads(e) for e in await p.read_history("a")]
        assert history == ["started", "event"]
        assert await p.renew_activity_locks([(held.id, held.lock_token)], 5) == []

    run(body)


def test_a_locked_turn_may_acknowledge_items_too(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        held = await started(p, kit, "a")
        await p.enqueue("a", kit.message("event", "x"))
        item = await kit.fetch_one(p, "a")
        turn = kit.turn(item, "event", acks=[(held.id, held.lock_token)])
        assert await p.commit_turns([turn]) == [True]
        assert await p.renew_activity_locks([(held.id, held.lock_token)], 5) == [
            held.id
        ]

    run(body)


def test_claimed_work_is_inserted_held(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        claim = ActivityClaim("tok-1", 0.3)
        await schedule(p, kit, "a", work("a", 2, claim=claim), work("a", 3))
        assert claim.id is not None
        # Only the unclaimed item can be fetched; the claimed one is held.
        [other] = await p.fetch_activities(10, kit.lease)
        assert (other.event_id, other.attempt) == (3, 1)
        # Its holder completes it with the claimed id and token.
        held = ActivityItem(
            id=claim.id,
            instance_id="a",
            execution_id=1,
            event_id=2,
            name="act",
            body="{}",
            lock_token="tok-1",
            attempt=1,
        )
        assert await p.renew_activity_locks([(held.id, "tok-1")], 0.3) == []
        await p.complete_activities([result(held, "claimed")])
        item = await kit.fetch_one(p, "a")
        assert [json.loads(m.body) for m in item.messages] == ["claimed"]

    run(body)


def test_an_expired_claim_is_fetched_by_others(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        claim = ActivityClaim("tok-1", 0.2)
        await schedule(p, kit, "a", work("a", 2, claim=claim))
        assert await p.fetch_activities(10, kit.lease) == []
        await asyncio.sleep(0.3)
        [taken] = await p.fetch_activities(10, kit.lease)
        assert (taken.id, taken.attempt) == (claim.id, 2)
        assert taken.lock_token != "tok-1"

    run(body)
