"""Conformance: version routing, suspending, resuming, rewinding (DESIGN §9)."""

from __future__ import annotations

import asyncio
import time

from perdure.providers import ActivityWork, OrchestrationItem, Provider
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
    "test_rewind_makes_a_failed_instance_running_with_its_message",
    "test_rewind_refuses_an_instance_that_is_not_failed",
    "test_rewind_takes_the_lock_of_a_turn_in_flight",
    "test_rewind_wakes_the_dispatcher",
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


def _work(event_id: int) -> ActivityWork:
    return ActivityWork(
        instance_id="a", execution_id=1, event_id=event_id, name="act", body="{}"
    )


async def _failed(p: Provider, kit: type[Kit], *work: ActivityWork) -> None:
    """Instance "a": a turn scheduling *work*, then one failing it."""
    await p.create_instance(kit.new("a"))
    item = await kit.fetch_one(p, "a")
    turn = kit.turn(item, "started", "scheduled", activities=list(work))
    assert await p.commit_turns([turn]) == [True]
    await p.enqueue("a", kit.message(body="fail"))
    item = await kit.fetch_one(p, "a")
    fail = kit.turn(item, "failed", status="Failed", error='{"type": "E"}')
    assert await p.commit_turns([fail]) == [True]


def test_rewind_makes_a_failed_instance_running_with_its_message(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await _failed(p, kit, _work(3), _work(4))
        [running] = await p.fetch_activities(1, kit.lease)
        await p.enqueue("a", kit.message(body="late"))
        rewind = kit.message("rewind", "go")
        assert await p.rewind_instance("a", rewind) is True
        record = await p.get_instance("a")
        assert record is not None
        assert (record.status, record.error, record.output) == ("Running", None, None)
        # All its activity work is gone: queued and running alike; the
        # running attempt's lease and completion are stale.
        assert await p.fetch_activities(10, kit.lease) == []
        assert await p.renew_activity_locks([(running.id, running.lock_token)], 5) == [
            running.id
        ]
        item = await kit.fetch_one(p, "a")
        assert [m.body for m in item.messages] == ['"late"', '"go"']
        assert item.messages[-1].kind == "rewind"
        assert item.attempt == 1  # counted afresh
        assert item.history_len == 3  # history untouched
        assert len(await p.read_history("a")) == 3

    run(body)


def test_rewind_refuses_an_instance_that_is_not_failed(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        rewind = kit.message("rewind")
        await kit.started(p, "running")
        await p.create_instance(kit.new("done"))
        item = await kit.fetch_one(p, "done")
        done = kit.turn(item, "done", status="Completed", output="1")
        assert await p.commit_turns([done]) == [True]
        await kit.started(p, "held")
        await p.enqueue("held", kit.message())
        item = await kit.fetch_one(p, "held")
        suspend = kit.turn(item, consumed=[], events=[], status="Suspended")
        assert await p.commit_turns([suspend]) == [True]
        for iid in ("running", "done", "held", "missing"):
            assert await p.rewind_instance(iid, rewind) is False, iid
        statuses = [await p.get_instance(i) for i in ("running", "done", "held")]
        assert [r.status for r in statuses if r] == [
            "Running",
            "Completed",
            "Suspended",
        ]
        # Nothing was enqueued.
        assert await p.fetch_orchestrations(10, kit.lease) == []

    run(body)


def test_rewind_takes_the_lock_of_a_turn_in_flight(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        # A runtime is consuming a late message of the failed instance when
        # it is rewound: that turn (writing the status back) is rejected.
        await _failed(p, kit)
        await p.enqueue("a", kit.message(body="late"))
        late: OrchestrationItem = await kit.fetch_one(p, "a")
        assert await p.rewind_instance("a", kit.message("rewind", "go")) is True
        stale = kit.turn(late, events=[], status="Failed", error='{"type": "E"}')
        assert await p.commit_turns([stale]) == [False]
        record = await p.get_instance("a")
        assert record is not None and record.status == "Running"
        item = await kit.fetch_one(p, "a")
        assert [m.body for m in item.messages] == ['"late"', '"go"']

    run(body)


def test_rewind_wakes_the_dispatcher(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await _failed(p, kit)
        assert await p.fetch_orchestrations(10, kit.lease) == []

        async def later() -> None:
            await asyncio.sleep(0.1)
            assert await p.rewind_instance("a", kit.message("rewind")) is True

        rewinder = asyncio.create_task(later())
        started = time.monotonic()
        await p.wait("orchestrations", 5)
        assert time.monotonic() - started < 2
        await rewinder
        assert list(await kit.fetch_map(p)) == ["a"]

    run(body)
