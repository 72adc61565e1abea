"""Schedules (docs/schedules.md): a durable instance that starts runs on time."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import perdure
from perdure import _schedules

WAIT = 30.0
FAST: dict[str, Any] = {
    "cancellation_grace_period": 0.1,
    "poll_interval": 0.05,
    "lock_timeout": 2.0,
}


@perdure.orchestration
async def tick(ctx: perdure.OrchestrationContext, input: Any) -> Any:
    return input


@perdure.orchestration
async def slow(ctx: perdure.OrchestrationContext, input: Any) -> None:
    await ctx.schedule_timer(float(input))


def runtime(url: str) -> perdure.Runtime:
    return perdure.Runtime(url, orchestrations=[tick, slow], **FAST)


async def eventually(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def runs(client: perdure.Client, schedule_id: str, name: Any = tick) -> list[str]:
    ids = [s.instance_id async for s in client.iter_instances(name=name)]
    return sorted(i for i in ids if i.startswith(schedule_id + ":"))


async def info(client: perdure.Client, schedule_id: str) -> perdure.ScheduleInfo:
    found = [s for s in await client.list_schedules() if s.schedule_id == schedule_id]
    assert len(found) == 1
    return found[0]


async def at_least(client: perdure.Client, sid: str, n: int, name: Any = tick) -> None:
    async def probe() -> bool:
        return len(await runs(client, sid, name)) >= n

    await eventually(probe, f"{n} runs of {sid}")


# ------------------------------------------------------------- next fires
def test_cron_next_fire_is_strictly_after() -> None:
    spec = _schedules.schedule_spec(
        "s", "tick", cron="*/5 * * * *", every=None, input=None,
        overlap="skip", start_at=None, version=None,
    )  # fmt: skip
    t0 = datetime(2026, 1, 1, 0, 3, tzinfo=UTC).timestamp()
    first = _schedules.first_slot(spec, t0)
    assert first == datetime(2026, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    # Fired late (at 00:17): the next slot is after now, missed ones skipped.
    late = datetime(2026, 1, 1, 0, 17, tzinfo=UTC).timestamp()
    assert _schedules.next_slot(spec, late, first) == (
        datetime(2026, 1, 1, 0, 20, tzinfo=UTC).timestamp()
    )
    # On time, exactly on a slot: the next one, never the same.
    assert _schedules.next_slot(spec, first, first) == (
        datetime(2026, 1, 1, 0, 10, tzinfo=UTC).timestamp()
    )


def test_cron_start_at_is_inclusive() -> None:
    start = datetime(2026, 1, 1, 1, 0, tzinfo=UTC).timestamp()
    spec = _schedules.schedule_spec(
        "s", "tick", cron="0 * * * *", every=None, input=None,
        overlap="skip", start_at=start, version=None,
    )  # fmt: skip
    assert _schedules.first_slot(spec, start - 7200) == start


def test_every_slots_are_anchored() -> None:
    spec = _schedules.schedule_spec(
        "s", "tick", cron=None, every=timedelta(seconds=10), input=None,
        overlap="allow", start_at=None, version=None,
    )  # fmt: skip
    assert _schedules.first_slot(spec, 100.0) == 110.0
    assert _schedules.next_slot(spec, 110.5, 110.0) == 120.0
    assert _schedules.next_slot(spec, 145.0, 120.0) == 150.0  # missed: skipped
    assert _schedules.run_id("s", 120.0) == "s:1970-01-01T00:02:00+00:00"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one"),
        ({"cron": "* * * * *", "every": 1}, "exactly one"),
        ({"cron": "not a cron"}, "bad cron"),
        ({"every": 0}, "every must be > 0"),
        ({"every": 1, "overlap": "queue"}, "overlap"),
    ],
)
async def test_bad_schedules_are_refused(
    sqlite_url: str, options: dict[str, Any], message: str
) -> None:
    async with perdure.Client(sqlite_url) as client:
        with pytest.raises(ValueError, match=message):
            await client.create_schedule("bad", tick, **options)
        assert await client.list_schedules() == []


# ------------------------------------------------------------ main flow
async def test_every_fires_pauses_resumes_and_deletes(storage_url: str) -> None:
    async with runtime(storage_url) as rt:
        client = rt.client
        await client.create_schedule("s1", tick, every=0.3, input={"n": 1})
        await at_least(client, "s1", 3)
        first = await runs(client, "s1")
        state = await client.wait_for_orchestration(first[0], timeout=WAIT)
        assert state.output == {"n": 1}
        listed = await info(client, "s1")
        assert listed.every == 0.3
        assert listed.orchestration == "tick"
        assert not listed.paused
        assert listed.status == "Running"

        await client.pause_schedule("s1")

        async def paused() -> bool:
            return (await info(client, "s1")).paused

        await eventually(paused, "paused")
        before = await runs(client, "s1")
        await asyncio.sleep(1.0)
        assert await runs(client, "s1") == before
        assert (await info(client, "s1")).next_fire is None

        await client.resume_schedule("s1")
        await at_least(client, "s1", len(before) + 2)

        await client.delete_schedule("s1")
        assert await client.list_schedules() == []
        with pytest.raises(perdure.InstanceNotFound):
            await client.pause_schedule("s1")
        after = await runs(client, "s1")
        await asyncio.sleep(1.0)
        assert await runs(client, "s1") == after


async def test_a_taken_id_is_refused(sqlite_url: str) -> None:
    async with perdure.Client(sqlite_url) as client:
        await client.create_schedule("s", tick, every=60)
        with pytest.raises(perdure.InstanceExists):
            await client.create_schedule("s", tick, every=60)


async def test_overlap_skip_waits_for_the_previous_run(sqlite_url: str) -> None:
    async with runtime(sqlite_url) as rt:
        client = rt.client
        await client.create_schedule("skip", slow, every=0.2, input=1.5)
        await client.create_schedule(
            "allow", slow, every=0.2, input=1.5, overlap="allow"
        )
        await at_least(client, "allow", 4, slow)

        async def skipped() -> bool:
            return (await info(client, "skip")).skipped >= 2

        await eventually(skipped, "skipped fires")
        # With skip, never two runs at once.
        states = [await client.get_status(i) for i in await runs(client, "skip", slow)]
        assert sum(s is not None and s.status == "Running" for s in states) <= 1
        for sid in ("skip", "allow"):
            await client.delete_schedule(sid)


async def test_continue_as_new_keeps_counting(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_schedules, "FIRES_PER_EXECUTION", 2)
    async with runtime(sqlite_url) as rt:
        client = rt.client
        await client.create_schedule("c", tick, every=0.2)
        await at_least(client, "c", 5)

        async def counted() -> bool:
            return (await info(client, "c")).fires >= 5

        await eventually(counted, "fires counted across executions")
        state = await client.get_status("schedule:c")
        assert state is not None and state.execution_id >= 2
        await client.delete_schedule("c")


async def test_a_restart_never_fires_a_slot_twice(sqlite_url: str) -> None:
    async with runtime(sqlite_url) as rt:
        await rt.client.create_schedule("r", tick, every=0.3)
        await at_least(rt.client, "r", 2)
    stopped = datetime.now(UTC)
    await asyncio.sleep(1.5)  # downtime: about five slots are missed
    restarted = datetime.now(UTC)
    async with runtime(sqlite_url) as rt:
        client = rt.client
        before = await runs(client, "r")
        await at_least(client, "r", len(before) + 3)
        ids = await runs(client, "r")
        await client.delete_schedule("r")
    # One run per slot: ids are unique, and the slots are distinct times.
    assert len(ids) == len(set(ids))
    slots = sorted(datetime.fromisoformat(i.split(":", 1)[1]) for i in ids)
    assert all(b > a for a, b in itertools.pairwise(slots))
    # The missed slots gave one catch-up fire at most.
    assert sum(stopped < slot < restarted for slot in slots) <= 1


def test_sync_client_schedules(sqlite_url: str) -> None:
    with perdure.SyncClient(sqlite_url) as client:
        client.create_schedule("y", tick, cron="0 0 1 1 *", start_at=time.time())
        [listed] = client.list_schedules()
        assert listed.schedule_id == "y"
        client.pause_schedule("y")
        client.resume_schedule("y")
        client.delete_schedule("y")
        assert client.list_schedules() == []


async def test_cron_with_seconds_on_a_runtime(storage_url: str) -> None:
    async with runtime(storage_url) as rt:
        client = rt.client
        await client.create_schedule("cs", tick, cron="* * * * * *")
        await at_least(client, "cs", 3)
        state = await client.get_status("schedule:cs")
        assert state is not None
        # Execution 1 computed the slots and continued as new.
        assert (state.version, state.execution_id) == (_schedules.VERSION, 2)
        listed = await info(client, "cs")
        assert listed.cron == "* * * * * *" and listed.next_fire is not None
        await client.delete_schedule("cs")


async def test_a_1_0_0_schedule_moves_to_2_0_0(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_schedules, "FIRES_PER_EXECUTION", 2)
    spec = _schedules.schedule_spec(
        "old", "tick", cron="* * * * * *", every=None, input=None,
        overlap="allow", start_at=None, version=None,
    )  # fmt: skip
    del spec["slots"]  # as 1.0.0 wrote it
    async with runtime(sqlite_url) as rt:
        client = rt.client
        await client.start_orchestration(
            "schedule:old", _schedules.SCHEDULE, spec, version="1.0.0"
        )
        await at_least(client, "old", 4)
        state = await client.get_status("schedule:old")
        assert state is not None and state.version == _schedules.VERSION
        await client.delete_schedule("old")
        ids = await runs(client, "old")
    assert len(ids) == len(set(ids))
