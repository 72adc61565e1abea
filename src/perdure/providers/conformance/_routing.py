"""Conformance: what turns route: executions, messages, children, work."""

from __future__ import annotations

import json
from typing import Any

from perdure.providers import ActivityWork, NewInstance, Outbound, Provider, WorkRef
from perdure.providers.conformance._fixtures import Kit, Run

__all__ = [
    "test_continue_as_new_moves_to_the_next_execution",
    "test_drop_messages_deletes_keyed_messages_only",
    "test_duplicate_activity_scheduling_is_ignored",
    "test_new_instance_conflict_sends_on_conflict",
    "test_new_instance_conflict_without_on_conflict_is_ignored",
    "test_outbound_to_unknown_instance_is_skipped",
    "test_work_scheduled_and_cancelled_in_one_turn_is_gone",
]


def work(instance_id: str, event_id: int, name: str = "act", **kw: Any) -> ActivityWork:
    kw.setdefault("execution_id", 1)
    kw.setdefault("body", json.dumps({"event": event_id}))
    return ActivityWork(instance_id=instance_id, event_id=event_id, name=name, **kw)


def test_continue_as_new_moves_to_the_next_execution(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        first = kit.turn(
            item,
            "e1",
            "continued",
            outbound=[Outbound(instance_id="a", message=kit.message("start", 2))],
        )
        assert await p.commit_turns([first]) == [True]
        item = await kit.fetch_one(p, "a")
        assert (item.instance.execution_id, item.history_len) == (1, 2)
        # Moving on must start from an empty history.
        wrong = kit.turn(item, "x", execution_id=2, history_start=2)
        assert await p.commit_turns([wrong]) == [False]
        moved = kit.turn(item, "n1", "n2", "n3", execution_id=2, history_start=0)
        assert await p.commit_turns([moved]) == [True]

        record = await p.get_instance("a")
        assert record is not None and record.execution_id == 2
        assert [json.loads(e) for e in await p.read_history("a")] == ["n1", "n2", "n3"]
        assert [json.loads(e) for e in await p.read_history("a", 2)] == [
            "n1",
            "n2",
            "n3",
        ]
        assert [json.loads(e) for e in await p.read_history("a", 1)] == [
            "e1",
            "continued",
        ]
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        assert (item.instance.execution_id, item.history_len) == (2, 3)
        # An older execution can never be written again.
        old = kit.turn(item, "late", execution_id=1, history_start=2)
        assert await p.commit_turns([old]) == [False]
        assert await p.commit_turns([kit.turn(item, "n4")]) == [True]
        assert len(await p.read_history("a", 1)) == 2

    run(body)


def test_outbound_to_unknown_instance_is_skipped(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        turn = kit.turn(
            item,
            "e1",
            outbound=[Outbound(instance_id="ghost", message=kit.message("x"))],
        )
        assert await p.commit_turns([turn]) == [True]
        await p.create_instance(kit.new("ghost"))
        ghost = await kit.fetch_one(p, "ghost")
        assert [m.kind for m in ghost.messages] == ["start"]

    run(body)


def test_new_instance_conflict_sends_on_conflict(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("taken", name="original"))
        await p.create_instance(kit.new("parent"))
        item = await kit.fetch_one(p, "parent")
        child = NewInstance(
            instance_id="taken",
            name="newcomer",
            version="9",
            start=kit.message("start", "never"),
            parent_instance_id="parent",
            on_conflict=kit.message("sub_failed", "id taken"),
            on_conflict_target="parent",
        )
        assert await p.commit_turns([kit.turn(item, "e1", new_instances=[child])]) == [
            True
        ]
        record = await p.get_instance("taken")
        assert record is not None
        assert (record.name, record.parent_instance_id) == ("original", None)
        items = await kit.fetch_map(p)
        assert [json.loads(m.body) for m in items["taken"].messages] == [
            {"input": "taken"}
        ]
        assert [(m.kind, json.loads(m.body)) for m in items["parent"].messages] == [
            ("sub_failed", "id taken")
        ]

    run(body)


def test_new_instance_conflict_without_on_conflict_is_ignored(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("taken"))
        await p.create_instance(kit.new("parent"))
        item = await kit.fetch_one(p, "parent")
        turn = kit.turn(item, "e1", new_instances=[kit.new("taken", name="x")])
        assert await p.commit_turns([turn]) == [True]
        record = await p.get_instance("taken")
        assert record is not None and record.name == "wf"

    run(body)


def test_duplicate_activity_scheduling_is_ignored(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        first = kit.turn(item, "e1", activities=[work("a", 1, body='"first"')])
        assert await p.commit_turns([first]) == [True]
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        again = kit.turn(item, "e2", activities=[work("a", 1, body='"second"')])
        assert await p.commit_turns([again]) == [True]
        [activity] = await p.fetch_activities(10, kit.lease)
        assert activity.body == '"first"'

    run(body)


def test_work_scheduled_and_cancelled_in_one_turn_is_gone(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        turn = kit.turn(
            item,
            "e1",
            activities=[work("a", 1)],
            cancel_activities=[WorkRef(instance_id="a", execution_id=1, event_id=1)],
            outbound=[
                Outbound(instance_id="a", message=kit.message("timer", key="t1"))
            ],
            drop_messages=[("a", "t1")],
        )
        assert await p.commit_turns([turn]) == [True]
        assert await p.fetch_activities(10, kit.lease) == []
        assert await p.fetch_orchestrations(10, kit.lease) == []

    run(body)


def test_drop_messages_deletes_keyed_messages_only(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await p.create_instance(kit.new("b"))
        item = await kit.fetch_one(p, "a")
        keyed = [
            Outbound(instance_id="b", message=kit.message("timer", 1, key="t1")),
            Outbound(instance_id="b", message=kit.message("timer", 2, key="t2")),
        ]
        assert await p.commit_turns([kit.turn(item, "e1", outbound=keyed)]) == [True]
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        drop = kit.turn(item, "e2", drop_messages=[("b", "t1"), ("b", "missing")])
        assert await p.commit_turns([drop]) == [True]
        b = await kit.fetch_one(p, "b")
        assert [(m.kind, json.loads(m.body)) for m in b.messages] == [
            ("start", {"input": "b"}),
            ("timer", 2),
        ]

    run(body)
