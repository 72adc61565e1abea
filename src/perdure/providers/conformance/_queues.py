"""Conformance: peek-lock queues (orchestrations and activities), leases."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from perdure.providers import (
    ActivityItem,
    ActivityResult,
    ActivityWork,
    Message,
    Outbound,
    Provider,
    WorkRef,
)
from perdure.providers.conformance._fixtures import Backend, Kit, Run

__all__ = [
    "test_abandon_releases_keeps_attempt_and_delays",
    "test_abandon_with_a_stale_token_does_nothing",
    "test_abandoned_activity_comes_back_after_delay",
    "test_activities_are_locked_oldest_first",
    "test_attempt_resets_after_commit",
    "test_bad_event_ids_reject_the_whole_batch",
    "test_cancellation_deletes_queued_work_and_renew_reports_running",
    "test_completion_after_lease_was_taken_is_dropped",
    "test_completion_batch_mixes_live_and_dead_results",
    "test_completion_deletes_item_and_enqueues_message",
    "test_completion_for_deleted_instance_is_dropped",
    "test_delayed_activity_is_not_fetched_until_due",
    "test_duplicate_completion_is_dropped",
    "test_fetch_respects_max_items_oldest_first",
    "test_future_message_is_not_fetched_until_due",
    "test_lease_expiry_lets_another_fetch_take_over",
    "test_locked_instance_is_not_fetched_again",
    "test_messages_come_in_arrival_order",
    "test_only_visible_messages_are_delivered",
    "test_renew_activity_locks_keeps_held_items",
    "test_renewed_fetch_after_expiry_does_not_touch_the_new_lease",
    "test_second_provider_object_sees_locks",
    "test_timer_sent_by_a_turn_becomes_due",
]


def work(instance_id: str, event_id: int, **kw: Any) -> ActivityWork:
    kw.setdefault("execution_id", 1)
    return ActivityWork(
        instance_id=instance_id, event_id=event_id, name="act", body="{}", **kw
    )


async def schedule(
    p: Provider, kit: type[Kit], instance_id: str, *works: ActivityWork
) -> None:
    """Create *instance_id* and commit a first turn scheduling *works*."""
    await p.create_instance(kit.new(instance_id))
    item = await kit.fetch_one(p, instance_id)
    turn = kit.turn(item, "started", activities=list(works))
    assert await p.commit_turns([turn]) == [True]


def result(item: ActivityItem, value: object = "ok") -> ActivityResult:
    return ActivityResult(
        id=item.id,
        lock_token=item.lock_token,
        instance_id=item.instance_id,
        message=Message(kind="activity_completed", body=json.dumps(value)),
    )


# --- orchestration queue ----------------------------------------------------


def test_locked_instance_is_not_fetched_again(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        await p.enqueue("a", kit.message("event_raised", "late"))
        assert await p.fetch_orchestrations(10, kit.lease) == []
        start = item.messages[0].id
        assert await p.commit_turns([kit.turn(item, "e1", consumed=[start])]) == [True]
        again = await kit.fetch_one(p, "a")
        assert [json.loads(m.body) for m in again.messages] == ["late"]

    run(body)


def test_messages_come_in_arrival_order(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        for n in range(5):
            await p.enqueue("a", kit.message("event_raised", n))
        item = await kit.fetch_one(p, "a")
        assert [m.kind for m in item.messages] == ["start"] + ["event_raised"] * 5
        assert [json.loads(m.body) for m in item.messages[1:]] == [0, 1, 2, 3, 4]
        ids = [m.id for m in item.messages]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

    run(body)


def test_fetch_respects_max_items_oldest_first(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        for name in ("a", "b", "c"):
            await p.create_instance(kit.new(name))
        first = await p.fetch_orchestrations(2, kit.lease)
        assert [i.instance.instance_id for i in first] == ["a", "b"]
        second = await p.fetch_orchestrations(2, kit.lease)
        assert [i.instance.instance_id for i in second] == ["c"]
        assert await p.fetch_orchestrations(2, kit.lease) == []
        assert len({i.lock_token for i in first + second}) == 3

    run(body)


def test_future_message_is_not_fetched_until_due(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await kit.started(p, "a")
        await p.enqueue("a", kit.message("timer_fired", visible_at=time.time() + 0.4))
        assert await p.fetch_orchestrations(10, kit.lease) == []
        await asyncio.sleep(0.5)
        item = await kit.fetch_one(p, "a")
        assert [m.kind for m in item.messages] == ["timer_fired"]

    run(body)


def test_only_visible_messages_are_delivered(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await kit.started(p, "a")
        await p.enqueue("a", kit.message("timer_fired", visible_at=time.time() + 60))
        await p.enqueue("a", kit.message("event_raised"))
        item = await kit.fetch_one(p, "a")
        assert [m.kind for m in item.messages] == ["event_raised"]

    run(body)


def test_timer_sent_by_a_turn_becomes_due(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        timer = kit.message("timer_fired", visible_at=time.time() + 0.4)
        turn = kit.turn(item, "e1", outbound=[Outbound(instance_id="a", message=timer)])
        assert await p.commit_turns([turn]) == [True]
        assert await p.fetch_orchestrations(10, kit.lease) == []
        await asyncio.sleep(0.5)
        item = await kit.fetch_one(p, "a")
        assert [m.kind for m in item.messages] == ["timer_fired"]

    run(body)


def test_lease_expiry_lets_another_fetch_take_over(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        old = await kit.fetch_one(p, "a", lease=0.2)
        assert old.attempt == 1
        assert await p.fetch_orchestrations(10, 0.2) == []
        await asyncio.sleep(0.3)
        new = await kit.fetch_one(p, "a")
        assert new.attempt == 2
        assert new.lock_token != old.lock_token
        assert [m.id for m in new.messages] == [m.id for m in old.messages]
        # The crashed holder's late commit is refused; the new holder's wins.
        assert await p.commit_turns([kit.turn(old, "stale")]) == [False]
        await p.abandon_orchestration("a", old.lock_token)  # not held: no-op
        assert await p.fetch_orchestrations(10, kit.lease) == []
        assert await p.commit_turns([kit.turn(new, "fresh")]) == [True]
        assert [json.loads(e) for e in await p.read_history("a")] == ["fresh"]

    run(body)


def test_attempt_resets_after_commit(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        first = await kit.fetch_one(p, "a", lease=0.1)
        await asyncio.sleep(0.2)
        second = await kit.fetch_one(p, "a")
        assert (first.attempt, second.attempt) == (1, 2)
        assert await p.commit_turns([kit.turn(second, "e1")]) == [True]
        await p.enqueue("a", kit.message())
        assert (await kit.fetch_one(p, "a")).attempt == 1

    run(body)


def test_abandon_releases_keeps_attempt_and_delays(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        first = await kit.fetch_one(p, "a")
        await p.abandon_orchestration("a", first.lock_token, delay=0.4)
        assert await p.fetch_orchestrations(10, kit.lease) == []
        await asyncio.sleep(0.5)
        second = await kit.fetch_one(p, "a")
        assert second.attempt == 2
        assert [m.id for m in second.messages] == [m.id for m in first.messages]
        await p.abandon_orchestration("a", second.lock_token)
        third = await kit.fetch_one(p, "a")
        assert third.attempt == 3

    run(body)


def test_abandon_with_a_stale_token_does_nothing(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        await p.abandon_orchestration("a", "stale", delay=60)
        assert await p.fetch_orchestrations(10, kit.lease) == []
        assert await p.commit_turns([kit.turn(item, "e1")]) == [True]
        await p.abandon_orchestration("ghost", "x")

    run(body)


def test_renewed_fetch_after_expiry_does_not_touch_the_new_lease(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        old = await kit.fetch_one(p, "a", lease=0.2)
        await asyncio.sleep(0.3)
        new = await kit.fetch_one(p, "a", lease=5)
        await p.abandon_orchestration("a", old.lock_token, delay=0)
        assert await p.fetch_orchestrations(10, kit.lease) == []
        assert await p.commit_turns([kit.turn(new, "e1")]) == [True]

    run(body)


def test_bad_event_ids_reject_the_whole_batch(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await p.create_instance(kit.new("b"))
        items = await kit.fetch_map(p)
        bad = kit.turn(items["a"], events=[(2, '"gap"')])
        with pytest.raises(ValueError, match="consecutive"):
            await p.commit_turns([kit.turn(items["b"], "b1"), bad])
        assert await p.read_history("b") == []
        assert await p.commit_turns([kit.turn(items["b"], "b1")]) == [True]

    run(body)


# --- activity queue -----------------------------------------------------------


def test_activities_are_locked_oldest_first(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2), work("a", 3), work("a", 4))
        first = await p.fetch_activities(2, kit.lease)
        assert [a.event_id for a in first] == [2, 3]
        assert all(a.attempt == 1 for a in first)
        assert len({a.lock_token for a in first}) == 2
        second = await p.fetch_activities(2, kit.lease)
        assert [a.event_id for a in second] == [4]
        assert await p.fetch_activities(2, kit.lease) == []

    run(body)


def test_completion_deletes_item_and_enqueues_message(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2))
        [activity] = await p.fetch_activities(10, kit.lease)
        await p.complete_activities([result(activity, 99)])
        item = await kit.fetch_one(p, "a")
        assert [(m.kind, json.loads(m.body)) for m in item.messages] == [
            ("activity_completed", 99)
        ]
        await asyncio.sleep(kit.lease + 0.1)
        assert await p.fetch_activities(10, kit.lease) == []

    run(body)


def test_duplicate_completion_is_dropped(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2))
        [activity] = await p.fetch_activities(10, kit.lease)
        await p.complete_activities([result(activity, 1)])
        await p.complete_activities([result(activity, 2)])
        await p.complete_activities([])
        item = await kit.fetch_one(p, "a")
        assert [json.loads(m.body) for m in item.messages] == [1]

    run(body)


def test_completion_after_lease_was_taken_is_dropped(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2))
        [old] = await p.fetch_activities(10, 0.2)
        await asyncio.sleep(0.3)
        [new] = await p.fetch_activities(10, kit.lease)
        assert (new.id, new.attempt) == (old.id, 2)
        assert new.lock_token != old.lock_token
        assert await p.renew_activity_locks([(old.id, old.lock_token)], 5) == [old.id]
        await p.complete_activities([result(old, "old")])
        assert await p.fetch_orchestrations(10, kit.lease) == []
        await p.complete_activities([result(new, "new")])
        item = await kit.fetch_one(p, "a")
        assert [json.loads(m.body) for m in item.messages] == ["new"]

    run(body)


def test_completion_batch_mixes_live_and_dead_results(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2), work("a", 3))
        first, second = await p.fetch_activities(10, kit.lease)
        stale = ActivityResult(
            id=second.id,
            lock_token="stale",
            instance_id="a",
            message=kit.message("activity_completed", "stale"),
        )
        await p.complete_activities([result(first, "one"), stale])
        item = await kit.fetch_one(p, "a")
        assert [json.loads(m.body) for m in item.messages] == ["one"]
        assert await p.renew_activity_locks([(second.id, second.lock_token)], 5) == []

    run(body)


def test_completion_for_deleted_instance_is_dropped(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2))
        [activity] = await p.fetch_activities(10, kit.lease)
        assert await p.delete_instance("a") is True
        await p.complete_activities([result(activity)])
        assert await p.fetch_orchestrations(10, kit.lease) == []

    run(body)


def test_cancellation_deletes_queued_work_and_renew_reports_running(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2), work("a", 3))
        [running] = await p.fetch_activities(1, kit.lease)
        assert running.event_id == 2
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        cancel = [
            WorkRef(instance_id="a", execution_id=1, event_id=2),
            WorkRef(instance_id="a", execution_id=1, event_id=3),
            WorkRef(instance_id="a", execution_id=1, event_id=99),  # unknown: ignored
        ]
        turn = kit.turn(item, "cancel 2", "cancel 3", cancel_activities=cancel)
        assert await p.commit_turns([turn]) == [True]
        assert await p.fetch_activities(10, kit.lease) == []
        lost = await p.renew_activity_locks([(running.id, running.lock_token)], 5)
        assert lost == [running.id]
        await p.complete_activities([result(running)])
        assert await p.fetch_orchestrations(10, kit.lease) == []

    run(body)


def test_renew_activity_locks_keeps_held_items(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2), work("a", 3))
        held = await p.fetch_activities(10, 0.2)
        leases = [(a.id, a.lock_token) for a in held]
        assert await p.renew_activity_locks(leases, 5) == []
        assert await p.renew_activity_locks([], 5) == []
        await asyncio.sleep(0.3)
        assert await p.fetch_activities(10, kit.lease) == []
        await p.complete_activities([result(a) for a in held])
        assert sorted(await p.renew_activity_locks(leases, 5)) == sorted(
            a.id for a in held
        )

    run(body)


def test_abandoned_activity_comes_back_after_delay(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2))
        [first] = await p.fetch_activities(10, kit.lease)
        await p.abandon_activity(first.id, first.lock_token, delay=0.4)
        assert await p.fetch_activities(10, kit.lease) == []
        await asyncio.sleep(0.5)
        [second] = await p.fetch_activities(10, kit.lease)
        assert (second.id, second.attempt) == (first.id, 2)
        # A stale token neither releases nor delays the item.
        await p.abandon_activity(second.id, first.lock_token, delay=60)
        assert await p.renew_activity_locks([(second.id, second.lock_token)], 5) == []
        await p.abandon_activity(second.id, second.lock_token)
        [third] = await p.fetch_activities(10, kit.lease)
        assert third.attempt == 3

    run(body)


def test_delayed_activity_is_not_fetched_until_due(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await schedule(p, kit, "a", work("a", 2, visible_at=time.time() + 0.4))
        assert await p.fetch_activities(10, kit.lease) == []
        await asyncio.sleep(0.5)
        [activity] = await p.fetch_activities(10, kit.lease)
        assert activity.event_id == 2

    run(body)


def test_second_provider_object_sees_locks(
    backend: Backend, run: Run, kit: type[Kit]
) -> None:
    """Two provider objects on one store (two processes) never share a lock."""
    if not backend.shared:
        pytest.skip("a private in-memory database has nobody to share with")

    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await schedule(p, kit, "b", work("b", 2))
        other = backend.make()
        await other.open()
        try:
            item = await kit.fetch_one(other, "a")
            assert await p.fetch_orchestrations(10, kit.lease) == []
            [activity] = await p.fetch_activities(10, kit.lease)
            assert await other.fetch_activities(10, kit.lease) == []
            await other.complete_activities([result(activity)])  # any object may
            assert await other.commit_turns([kit.turn(item, "e1")]) == [True]
            b = await kit.fetch_one(p, "b")
            assert [m.kind for m in b.messages] == ["activity_completed"]
        finally:
            await other.close()

    run(body)
