"""Conformance: client verbs (create, enqueue, get, list, history, delete)."""

from __future__ import annotations

import asyncio
import json

import pytest

from perdure._errors import InstanceExists, InstanceNotFound
from perdure.providers import ActivityWork, Outbound, Provider
from perdure.providers.conformance._fixtures import Kit, Run

__all__ = [
    "test_create_existing_id_raises_and_writes_nothing",
    "test_create_instance_enqueues_its_start_message",
    "test_create_instance_keeps_parent",
    "test_create_instance_stores_a_running_row",
    "test_delete_instance_removes_everything",
    "test_delete_unknown_instance_returns_false",
    "test_enqueue_appends_to_the_queue",
    "test_enqueue_to_unknown_instance_raises_and_writes_nothing",
    "test_get_unknown_instance_is_none",
    "test_list_instances_newest_first",
    "test_list_instances_same_timestamp_still_newest_first",
    "test_list_instances_status_filter_and_limit",
    "test_read_history_in_event_order",
    "test_read_history_of_unknown_instance_is_empty",
]


def test_create_instance_stores_a_running_row(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", name="flow", version="2"))
        record = await p.get_instance("a")
        assert record is not None
        assert (record.instance_id, record.name, record.version) == ("a", "flow", "2")
        assert record.status == "Running"
        assert record.execution_id == 1
        assert record.output is None and record.error is None
        assert record.custom_status is None and record.parent_instance_id is None
        assert record.created_at > 0 and record.updated_at >= record.created_at

    run(body)


def test_create_instance_enqueues_its_start_message(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", start=kit.message("start", 42)))
        item = await kit.fetch_one(p, "a")
        assert [(m.kind, json.loads(m.body)) for m in item.messages] == [("start", 42)]
        assert item.history_len == 0
        assert item.attempt == 1

    run(body)


def test_create_existing_id_raises_and_writes_nothing(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", name="first"))
        with pytest.raises(InstanceExists) as caught:
            await p.create_instance(
                kit.new("a", name="second", start=kit.message("start", "dup"))
            )
        assert caught.value.instance_id == "a"
        record = await p.get_instance("a")
        assert record is not None and record.name == "first"
        item = await kit.fetch_one(p, "a")
        assert [json.loads(m.body) for m in item.messages] == [{"input": "a"}]

    run(body)


def test_create_instance_keeps_parent(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("child", parent_instance_id="parent"))
        record = await p.get_instance("child")
        assert record is not None and record.parent_instance_id == "parent"

    run(body)


def test_get_unknown_instance_is_none(run: Run) -> None:
    async def body(p: Provider) -> None:
        assert await p.get_instance("nope") is None

    run(body)


def test_enqueue_appends_to_the_queue(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await p.enqueue("a", kit.message("event_raised", {"n": 1}))
        item = await kit.fetch_one(p, "a")
        assert [m.kind for m in item.messages] == ["start", "event_raised"]

    run(body)


def test_enqueue_to_unknown_instance_raises_and_writes_nothing(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        with pytest.raises(InstanceNotFound) as caught:
            await p.enqueue("ghost", kit.message("event_raised", "lost"))
        assert caught.value.instance_id == "ghost"
        # Creating the id afterwards must not reveal the rejected message.
        await p.create_instance(kit.new("ghost"))
        item = await kit.fetch_one(p, "ghost")
        assert [m.kind for m in item.messages] == ["start"]

    run(body)


def test_list_instances_newest_first(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        for name in ("a", "b", "c"):
            await p.create_instance(kit.new(name))
            await asyncio.sleep(0.002)
        listed = await p.list_instances()
        assert [r.instance_id for r in listed] == ["c", "b", "a"]

    run(body)


def test_list_instances_same_timestamp_still_newest_first(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        # No sleeps: rows may share created_at; insertion order breaks ties.
        for name in ("a", "b", "c", "d"):
            await p.create_instance(kit.new(name))
        listed = await p.list_instances()
        assert [r.instance_id for r in listed] == ["d", "c", "b", "a"]

    run(body)


def test_list_instances_status_filter_and_limit(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        for name in ("a", "b", "c", "d"):
            await p.create_instance(kit.new(name))
            await asyncio.sleep(0.002)
        for name in ("b", "d"):
            item = await kit.fetch_one(p, name)
            turn = kit.turn(item, "done", status="Completed", output='"ok"')
            assert await p.commit_turns([turn]) == [True]
        completed = await p.list_instances(status="Completed")
        assert [r.instance_id for r in completed] == ["d", "b"]
        assert all(r.output == '"ok"' for r in completed)
        running = await p.list_instances(status="Running")
        assert [r.instance_id for r in running] == ["c", "a"]
        assert await p.list_instances(status="Failed") == []
        assert [r.instance_id for r in await p.list_instances(limit=3)] == [
            "d",
            "c",
            "b",
        ]
        assert [
            r.instance_id for r in await p.list_instances(status="Running", limit=1)
        ] == ["c"]

    run(body)


def test_read_history_in_event_order(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        assert await p.commit_turns([kit.turn(item, "e1", "e2")]) == [True]
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        assert item.history_len == 2
        assert await p.commit_turns([kit.turn(item, "e3")]) == [True]
        history = await p.read_history("a")
        assert [json.loads(e) for e in history] == ["e1", "e2", "e3"]
        assert await p.read_history("a", 1) == history

    run(body)


def test_read_history_of_unknown_instance_is_empty(run: Run) -> None:
    async def body(p: Provider) -> None:
        assert await p.read_history("ghost") == []
        assert await p.read_history("ghost", 3) == []

    run(body)


def test_delete_instance_removes_everything(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await p.create_instance(kit.new("keep"))
        item = await kit.fetch_one(p, "a")
        work = ActivityWork(
            instance_id="a", execution_id=1, event_id=2, name="act", body="{}"
        )
        turn = kit.turn(
            item,
            "started",
            "scheduled",
            activities=[work],
            outbound=[Outbound(instance_id="a", message=kit.message("later"))],
        )
        assert await p.commit_turns([turn]) == [True]

        assert await p.delete_instance("a") is True
        assert await p.get_instance("a") is None
        assert await p.read_history("a") == []
        assert await p.read_history("a", 1) == []
        assert await p.fetch_activities(10, kit.lease) == []
        items = await p.fetch_orchestrations(10, kit.lease)
        assert [i.instance.instance_id for i in items] == ["keep"]
        assert [r.instance_id for r in await p.list_instances()] == ["keep"]

        # The id is free again, with a clean slate.
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        assert item.history_len == 0
        assert [m.kind for m in item.messages] == ["start"]

    run(body)


def test_delete_unknown_instance_returns_false(run: Run) -> None:
    async def body(p: Provider) -> None:
        assert await p.delete_instance("ghost") is False

    run(body)
