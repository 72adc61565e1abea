"""Conformance: committing turns atomically, and rejecting stale ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from perdure.providers import ActivityWork, Outbound, Provider
from perdure.providers.conformance._fixtures import Kit, Run

__all__ = [
    "test_batch_commits_good_turns_and_rejects_bad_ones",
    "test_consumed_messages_of_other_instances_are_kept",
    "test_empty_batch",
    "test_non_consecutive_event_ids_raise_and_write_nothing",
    "test_none_fields_leave_stored_values_alone",
    "test_same_instance_twice_in_a_batch_commits_once",
    "test_turn_completion_sets_status_output_and_releases_lock",
    "test_turn_failure_stores_error",
    "test_turn_writes_all_its_parts",
    "test_unconsumed_messages_stay_queued",
    "test_wrong_history_start_is_rejected_and_writes_nothing",
    "test_wrong_lock_token_is_rejected_and_writes_nothing",
]


def work(instance_id: str, event_id: int, name: str = "act", **kw: Any) -> ActivityWork:
    kw.setdefault("execution_id", 1)
    kw.setdefault("body", json.dumps({"event": event_id}))
    return ActivityWork(instance_id=instance_id, event_id=event_id, name=name, **kw)


def test_turn_writes_all_its_parts(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", name="", version=""))
        await p.create_instance(kit.new("other"))
        item = await kit.fetch_one(p, "a")
        turn = kit.turn(
            item,
            "started",
            "scheduled",
            "child scheduled",
            activities=[work("a", 2)],
            outbound=[Outbound(instance_id="other", message=kit.message("ping", 7))],
            new_instances=[kit.new("child", parent_instance_id="a")],
            name="flow",
            version="3",
            custom_status='"busy"',
        )
        assert await p.commit_turns([turn]) == [True]

        assert [json.loads(e) for e in await p.read_history("a")] == [
            "started",
            "scheduled",
            "child scheduled",
        ]
        record = await p.get_instance("a")
        assert record is not None
        assert (record.name, record.version, record.status) == ("flow", "3", "Running")
        assert record.custom_status == '"busy"'
        [activity] = await p.fetch_activities(10, kit.lease)
        assert (activity.instance_id, activity.execution_id, activity.event_id) == (
            "a",
            1,
            2,
        )
        assert (activity.name, json.loads(activity.body)) == ("act", {"event": 2})
        items = await kit.fetch_map(p)
        # "a" consumed its start message and has nothing left to do.
        assert set(items) == {"other", "child"}
        assert [(m.kind, json.loads(m.body)) for m in items["other"].messages] == [
            ("start", {"input": "other"}),
            ("ping", 7),
        ]
        assert items["child"].instance.parent_instance_id == "a"
        assert [m.kind for m in items["child"].messages] == ["start"]

    run(body)


def test_turn_completion_sets_status_output_and_releases_lock(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        turn = kit.turn(item, "started", "done", status="Completed", output='"out"')
        assert await p.commit_turns([turn]) == [True]
        record = await p.get_instance("a")
        assert record is not None
        assert (record.status, record.output, record.error) == (
            "Completed",
            '"out"',
            None,
        )
        assert record.updated_at >= record.created_at
        # The lock is released: a new message makes the instance fetchable.
        await p.enqueue("a", kit.message())
        again = await kit.fetch_one(p, "a")
        assert again.instance.status == "Completed"
        assert again.history_len == 2
        assert again.attempt == 1

    run(body)


def test_turn_failure_stores_error(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        turn = kit.turn(item, "failed", status="Failed", error='{"type": "E"}')
        assert await p.commit_turns([turn]) == [True]
        record = await p.get_instance("a")
        assert record is not None
        assert (record.status, record.error) == ("Failed", '{"type": "E"}')

    run(body)


def test_none_fields_leave_stored_values_alone(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", name="flow", version="1"))
        item = await kit.fetch_one(p, "a")
        first = kit.turn(item, "e1", custom_status='"s1"')
        assert await p.commit_turns([first]) == [True]
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        assert await p.commit_turns([kit.turn(item, "e2")]) == [True]
        record = await p.get_instance("a")
        assert record is not None
        assert (record.name, record.version, record.custom_status) == (
            "flow",
            "1",
            '"s1"',
        )

    run(body)


def test_wrong_lock_token_is_rejected_and_writes_nothing(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await p.create_instance(kit.new("other"))
        item = await kit.fetch_one(p, "a")
        bad = kit.turn(
            item,
            "e1",
            lock_token="not-the-token",
            activities=[work("a", 1)],
            outbound=[Outbound(instance_id="other", message=kit.message("x"))],
            new_instances=[kit.new("child")],
            status="Completed",
            custom_status='"nope"',
        )
        assert await p.commit_turns([bad]) == [False]
        assert await p.read_history("a") == []
        assert await p.get_instance("child") is None
        assert await p.fetch_activities(10, kit.lease) == []
        record = await p.get_instance("a")
        assert record is not None
        assert (record.status, record.custom_status) == ("Running", None)
        other = await kit.fetch_one(p, "other")
        assert [m.kind for m in other.messages] == ["start"]
        # The real holder still commits, consuming the messages it was given.
        assert await p.commit_turns([kit.turn(item, "e1")]) == [True]
        assert len(await p.read_history("a")) == 1

    run(body)


def test_wrong_history_start_is_rejected_and_writes_nothing(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        assert await p.commit_turns([kit.turn(item, "e1", "e2")]) == [True]
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        assert item.history_len == 2
        stale = kit.turn(item, "x", history_start=1, activities=[work("a", 2)])
        ahead = kit.turn(item, "x", history_start=3)
        assert await p.commit_turns([stale]) == [False]
        assert await p.commit_turns([ahead]) == [False]
        assert [json.loads(e) for e in await p.read_history("a")] == ["e1", "e2"]
        assert await p.fetch_activities(10, kit.lease) == []
        # Rejection kept the lock: the holder can still commit properly.
        assert await p.fetch_orchestrations(10, kit.lease) == []
        assert await p.commit_turns([kit.turn(item, "e3")]) == [True]

    run(body)


def test_batch_commits_good_turns_and_rejects_bad_ones(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        for name in ("a", "b", "c"):
            await p.create_instance(kit.new(name))
        items = await kit.fetch_map(p)
        turns = [
            kit.turn(items["a"], "a1", activities=[work("a", 1)]),
            kit.turn(items["b"], "b1", lock_token="stale", activities=[work("b", 1)]),
            kit.turn(items["c"], "c1", activities=[work("c", 1)]),
        ]
        assert await p.commit_turns(turns) == [True, False, True]
        assert len(await p.read_history("a")) == 1
        assert await p.read_history("b") == []
        assert len(await p.read_history("c")) == 1
        fetched = await p.fetch_activities(10, kit.lease)
        assert sorted(a.instance_id for a in fetched) == ["a", "c"]

    run(body)


def test_same_instance_twice_in_a_batch_commits_once(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        turns = [kit.turn(item, "e1"), kit.turn(item, "e1")]
        assert await p.commit_turns(turns) == [True, False]
        assert len(await p.read_history("a")) == 1

    run(body)


def test_non_consecutive_event_ids_raise_and_write_nothing(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await p.create_instance(kit.new("b"))
        items = await kit.fetch_map(p)
        good = kit.turn(items["a"], "a1")
        bad = kit.turn(items["b"], events=[(1, '"x"'), (3, '"y"')])
        with pytest.raises(ValueError):
            await p.commit_turns([good, bad])
        assert await p.read_history("a") == []
        assert await p.read_history("b") == []

    run(body)


def test_empty_batch(run: Run) -> None:
    async def body(p: Provider) -> None:
        assert await p.commit_turns([]) == []

    run(body)


def test_consumed_messages_of_other_instances_are_kept(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await p.create_instance(kit.new("b"))
        items = await kit.fetch_map(p)
        b_ids = [m.id for m in items["b"].messages]
        a_ids = [m.id for m in items["a"].messages]
        turn = kit.turn(items["a"], "a1", consumed=[*a_ids, *b_ids])
        assert await p.commit_turns([turn]) == [True]
        await p.abandon_orchestration("b", items["b"].lock_token)
        again = await kit.fetch_one(p, "b")
        assert [m.id for m in again.messages] == b_ids

    run(body)


def test_unconsumed_messages_stay_queued(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await p.enqueue("a", kit.message("event_raised", 1))
        item = await kit.fetch_one(p, "a")
        start, event = item.messages
        assert await p.commit_turns([kit.turn(item, "e1", consumed=[start.id])]) == [
            True
        ]
        again = await kit.fetch_one(p, "a")
        assert [m.id for m in again.messages] == [event.id]

    run(body)
