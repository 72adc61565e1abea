"""Conformance: version routing, suspending and resuming (DESIGN §9)."""

from __future__ import annotations

import asyncio

from perdure.providers import Provider
from perdure.providers.conformance._fixtures import Kit, Run

__all__ = [
    "test_fetch_skips_versions_the_caller_does_not_handle",
    "test_fetch_without_handlers_takes_any_version",
    "test_unchosen_version_goes_to_any_runtime_with_the_name",
    "test_finished_instances_are_fetched_by_anyone",
    "test_suspended_instance_keeps_its_messages_and_is_not_fetched",
    "test_resume_makes_a_suspended_instance_fetchable",
    "test_resume_refuses_an_instance_that_is_not_suspended",
    "test_waiting_instances_counts_what_no_handler_takes",
]

V1 = [("wf", "1")]
V2 = [("wf", "2")]


async def _ids(p: Provider, handlers: list[tuple[str, str]] | None) -> set[str]:
    items = await p.fetch_orchestrations(100, Kit.lease, handlers)
    for item in items:
        await p.abandon_orchestration(item.instance.instance_id, item.lock_token)
    return {item.instance.instance_id for item in items}


def test_fetch_skips_versions_the_caller_does_not_handle(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", version="1"))
        await p.create_instance(kit.new("b", version="2"))
        await p.create_instance(kit.new("c", name="other", version="1"))
        assert await _ids(p, V1) == {"a"}
        assert await _ids(p, V2) == {"b"}
        assert await _ids(p, [("other", "1"), ("wf", "2")]) == {"b", "c"}
        assert await _ids(p, []) == set()

    run(body)


def test_fetch_without_handlers_takes_any_version(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", version="1"))
        await p.create_instance(kit.new("b", version="2"))
        assert await _ids(p, None) == {"a", "b"}

    run(body)


def test_unchosen_version_goes_to_any_runtime_with_the_name(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", version=""))
        assert await _ids(p, [("other", "1")]) == set()
        assert await _ids(p, V2) == {"a"}

    run(body)


def test_finished_instances_are_fetched_by_anyone(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        # Finish a v1 instance, then send it a late message: a v2-only
        # runtime takes it (only to consume the message).
        await kit.started(p, "a", version="1")
        await p.enqueue("a", kit.message())
        ready = await kit.fetch_one(p, "a")
        done = kit.turn(ready, "done", status="Completed", output="1")
        assert await p.commit_turns([done]) == [True]
        await p.enqueue("a", kit.message())
        assert await _ids(p, V2) == {"a"}

    run(body)


def test_suspended_instance_keeps_its_messages_and_is_not_fetched(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await kit.started(p, "a")
        await p.enqueue("a", kit.message(body="kept"))
        item = await kit.fetch_one(p, "a")
        suspend = kit.turn(
            item, consumed=[], events=[], status="Suspended", error='{"type": "E"}'
        )
        assert await p.commit_turns([suspend]) == [True]
        record = await p.get_instance("a")
        assert record is not None
        assert (record.status, record.error) == ("Suspended", '{"type": "E"}')
        await p.enqueue("a", kit.message(body="later"))
        assert await _ids(p, None) == set()
        assert await _ids(p, V1) == set()
        assert len(await p.read_history("a")) == 1

    run(body)


def test_resume_makes_a_suspended_instance_fetchable(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await kit.started(p, "a")
        await p.enqueue("a", kit.message(body="kept"))
        item = await kit.fetch_one(p, "a")
        suspend = kit.turn(item, consumed=[], events=[], status="Suspended")
        assert await p.commit_turns([suspend]) == [True]
        assert await p.resume_instance("a") is True
        record = await p.get_instance("a")
        assert record is not None
        assert (record.status, record.error) == ("Running", None)
        again = await kit.fetch_one(p, "a")
        assert [m.body for m in again.messages] == ['"kept"']
        assert again.attempt == 1  # counted afresh after the resume
        assert again.history_len == 1

    run(body)


def test_resume_refuses_an_instance_that_is_not_suspended(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await kit.started(p, "a")
        assert await p.resume_instance("a") is False
        assert await p.resume_instance("missing") is False
        record = await p.get_instance("a")
        assert record is not None and record.status == "Running"

    run(body)


def test_waiting_instances_counts_what_no_handler_takes(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", version="1"))
        await p.create_instance(kit.new("b", version="1"))
        await p.create_instance(kit.new("c", version="2"))
        await asyncio.sleep(0.05)
        assert await p.waiting_instances(V2, 0.0) == [("wf", "1", 2)]
        assert await p.waiting_instances(V1 + V2, 0.0) == []
        # Not waiting long enough yet.
        assert await p.waiting_instances(V2, 3600.0) == []

    run(body)
