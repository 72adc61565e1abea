"""Activity worker faults: hung sync threads, BaseExceptions, slow acks, shutdown.

Probe findings F6 (timed-out sync activities exhausted the thread pool),
F7 (SystemExit from an activity killed the runtime), F8 (finished but
unacknowledged activities lost their lease and ran twice), and the
new-user trial's graceful restart that stalled activities for lock_timeout.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from _helpers import WAIT, eventually, run_to_end, runtime

import perdure
from perdure._errors import HandlerNotFound
from perdure._registry import Registry
from perdure.providers import open_provider

#: Observations of the activities below, per key.
SEEN: dict[str, list[Any]] = {}
#: Set at the end of a test to let hung sync activities return.
RELEASE = threading.Event()


def note(key: str, what: Any) -> None:
    SEEN.setdefault(key, []).append(what)


@perdure.activity
def hang_sync(ctx: perdure.ActivityContext) -> None:
    # Ignores is_cancelled() on purpose: its thread outlives its attempt.
    note("hang_sync", "started")
    RELEASE.wait(WAIT)
    note("hang_sync saw cancel", ctx.is_cancelled())


@perdure.activity
def quick_sync(ctx: perdure.ActivityContext, n: int) -> int:
    return n + 1


@perdure.activity
async def quick_async(ctx: perdure.ActivityContext, n: int) -> int:
    return n + 1


@perdure.orchestration
async def call_with_timeout(
    ctx: perdure.OrchestrationContext, args: list[Any]
) -> object:
    name, timeout = args
    try:
        return await ctx.schedule_activity(name, timeout=timeout)
    except perdure.ActivityFailed as exc:
        return [exc.type, str(exc)]


@perdure.orchestration
async def add_one(ctx: perdure.OrchestrationContext, name: str) -> int:
    return int(await ctx.schedule_activity(name, 1))


class Custom(BaseException):
    pass


RAISES: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "Custom": Custom,
    "CancelledError": asyncio.CancelledError,
}


@perdure.activity
def raise_sync(ctx: perdure.ActivityContext, kind: str) -> None:
    note(f"raise {ctx.instance_id}", ctx.attempt)
    raise RAISES[kind]("from sync")


@perdure.activity
async def raise_async(ctx: perdure.ActivityContext, kind: str) -> None:
    note(f"raise {ctx.instance_id}", ctx.attempt)
    await asyncio.sleep(0)
    raise RAISES[kind]("from async")


@perdure.orchestration
async def catch_all(ctx: perdure.OrchestrationContext, cases: list[Any]) -> object:
    outcomes: list[list[str] | None] = []
    for name, kind, timeout in cases:
        try:
            await ctx.schedule_activity(name, kind, timeout=timeout)
            outcomes.append(None)
        except perdure.ActivityFailed as exc:
            outcomes.append([exc.type, str(exc)])
    return outcomes


@perdure.activity
async def slow_async(ctx: perdure.ActivityContext) -> str:
    note(ctx.instance_id, (ctx.attempt, time.monotonic()))
    await asyncio.sleep(3)
    return "done"


@perdure.activity
def slow_sync(ctx: perdure.ActivityContext) -> str:
    note(ctx.instance_id, (ctx.attempt, time.monotonic()))
    time.sleep(3)
    return "done"


@perdure.activity
def count_runs(ctx: perdure.ActivityContext) -> str:
    note(ctx.instance_id, ctx.attempt)
    return "once"


@perdure.orchestration
async def call(ctx: perdure.OrchestrationContext, name: str) -> object:
    return await ctx.schedule_activity(name)


@perdure.orchestration
async def nothing(ctx: perdure.OrchestrationContext) -> str:
    return "ok"


async def test_hung_timed_out_sync_activities_do_not_starve_the_pool(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # activity_concurrency=4 makes a pool of 4 threads; 6 attempts hang past
    # their timeout. A normal sync activity must still get a thread.
    SEEN.clear()
    RELEASE.clear()
    acts: list[Callable[..., Any]] = [hang_sync, quick_sync, quick_async]
    orchs: list[Callable[..., Any]] = [call_with_timeout, add_one]
    try:
        async with runtime(storage_url, orchs, acts, activity_concurrency=4) as rt:
            client = rt.client
            for i in range(6):
                await client.start_orchestration(
                    f"hung-{i}", call_with_timeout, ["hang_sync", 0.2]
                )
            for i in range(6):
                state = await client.wait_for_orchestration(f"hung-{i}", WAIT)
                assert state.output is not None
                kind, message = state.output
                assert kind == "TimeoutError" and "timed out after 0.2 s" in message
            assert SEEN["hang_sync"] == ["started"] * 6  # all six are still hung
            for name in ("quick_sync", "quick_async"):
                state = await run_to_end(client, f"after-{name}", add_one, name)
                assert (state.status, state.output) == ("Completed", 2)
    finally:
        RELEASE.set()
    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 6 and all("'hang_sync'" in text for text in given_up)
    assert "replacement thread was started" in given_up[0]
    # A given-up attempt sees is_cancelled() (so a polite one can stop).
    await eventually(lambda: len(SEEN.get("hang_sync saw cancel", [])) == 6)
    assert SEEN["hang_sync saw cancel"] == [True] * 6


_EXIT_SCRIPT = """
import asyncio, sys, time
import perdure

@perdure.activity
def forever(ctx):
    print("started", flush=True)
    time.sleep(3600)

@perdure.orchestration
async def run_forever(ctx):
    await ctx.schedule_activity(forever)

async def main():
    rt = perdure.Runtime(sys.argv[1], orchestrations=[run_forever],
                         activities=[forever], poll_interval=0.05)
    await rt.start()
    await rt.client.start_orchestration("x", run_forever)
    while True:
        state = await rt.client.get_history("x")
        if any(e.type == "ActivityScheduled" for e in state):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    await rt.shutdown(timeout=0.2)
    print("shut down", flush=True)

asyncio.run(main())
"""


def test_process_exits_despite_a_hung_sync_activity(storage_url: str) -> None:
    # Before: interpreter exit joined the pool's threads, so a hung sync
    # activity kept `perdure worker` alive after SIGTERM.
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_EXIT_SCRIPT), storage_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["started", "shut", "down"]
    assert time.monotonic() - started < 30
    assert "abandoned" in done.stderr and "'forever'" in done.stderr


async def test_base_exceptions_fail_the_attempt_not_the_process(
    storage_url: str,
) -> None:
    SEEN.pop("raise raises", None)
    cases = [
        [name, kind, timeout]
        for name in ("raise_async", "raise_sync")
        for kind in RAISES
        for timeout in (None, 5.0)
    ]
    async with runtime(
        storage_url, [catch_all, add_one], [raise_sync, raise_async, quick_async]
    ) as rt:
        state = await run_to_end(rt.client, "raises", catch_all, cases)
        assert state.status == "Completed", state.error
        # The runtime still works.
        after = await run_to_end(rt.client, "bystander", add_one, "quick_async")
    assert after.output == 2
    assert len(state.output) == len(cases)
    for (name, kind, _), (etype, message) in zip(cases, state.output, strict=True):
        assert etype == kind, (name, kind, message)
        assert f"activity {name!r} raised {kind}" in message
        assert "fails this attempt" in message
    assert SEEN["raise raises"] == [1] * len(cases)  # one attempt each, no redelivery


async def test_slow_acknowledgement_keeps_the_lease(storage_url: str) -> None:
    # The result's write takes longer than lock_timeout: the lease must be
    # renewed meanwhile, or another fetch runs the finished activity again.
    provider = open_provider(storage_url)
    complete = provider.complete_activities
    calls = []

    async def slow_complete(results: Sequence[Any]) -> None:
        calls.append(len(results))
        if len(calls) == 1:
            await asyncio.sleep(2.0)
        await complete(results)

    # Patches the verb on this one object (the runtime calls it through it).
    provider.complete_activities = slow_complete  # type: ignore[method-assign]
    SEEN.pop("acked", None)
    try:
        async with runtime(provider, [call], [count_runs], lock_timeout=0.5) as rt:
            state = await run_to_end(rt.client, "acked", call, "count_runs")
    finally:
        await provider.close()
    assert (state.status, state.output) == ("Completed", "once")
    assert SEEN["acked"] == [1]


@pytest.mark.parametrize("activity", [slow_async, slow_sync])
async def test_shutdown_gives_back_unfinished_activities_at_once(
    storage_url: str, activity: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # New-user trial problem 7: a restart waited lock_timeout (here 30 s)
    # before the activity ran again.
    iid = f"restart-{activity.__name__}"
    SEEN.pop(iid, None)
    options = {"lock_timeout": 30.0}
    rt = runtime(storage_url, [call], [activity], **options)
    await rt.start()
    await rt.client.start_orchestration(iid, call, activity.__name__)
    await eventually(lambda: SEEN.get(iid), "the activity to start")
    await asyncio.sleep(1.0)
    await rt.shutdown(timeout=0.5)
    stopped = time.monotonic()
    assert f"'{activity.__name__}'" in caplog.text
    assert "giving back the leases" in caplog.text
    async with runtime(storage_url, [call], [activity], **options) as again:
        await eventually(lambda: len(SEEN[iid]) == 2, "the second attempt")
        state = await again.client.wait_for_orchestration(iid, WAIT)
    (_, _started), (attempt, second) = SEEN[iid]
    assert attempt == 2
    assert second - stopped < 1.5, "the lease was not given back"
    assert (state.status, state.output) == ("Completed", "done")


async def test_shutdown_lets_a_turn_in_flight_commit(storage_url: str) -> None:
    # A turn whose commit is under way at shutdown is committed, so its
    # instance lock is released instead of held for lock_timeout.
    provider = open_provider(storage_url)
    commit = provider.commit_turns
    entered = asyncio.Event()

    async def slow_commit(turns: Sequence[Any]) -> list[bool]:
        if not entered.is_set():
            entered.set()
            await asyncio.sleep(0.5)
        return await commit(turns)

    # Patches the verb on this one object (the runtime calls it through it).
    provider.commit_turns = slow_commit  # type: ignore[method-assign]
    try:
        rt = runtime(provider, [nothing], lock_timeout=30.0)
        await rt.start()
        await rt.client.start_orchestration("turn", nothing)
        await asyncio.wait_for(entered.wait(), WAIT)
        await rt.shutdown(timeout=0.1)
    finally:
        await provider.close()
    async with runtime(storage_url, [nothing], lock_timeout=30.0) as again:
        state = await again.client.wait_for_orchestration("turn", 5.0)
    assert (state.status, state.output) == ("Completed", "ok")


def test_unknown_activity_error_lists_registered_activities() -> None:
    # A runtime no longer fetches an activity it lacks (it waits for one
    # that has it: test_errors.py); with a provider that cannot route, the
    # item fails with this error.
    registry = Registry([call], [quick_sync, count_runs])
    with pytest.raises(HandlerNotFound) as info:
        registry.activity("NoSuchActivity")
    assert str(info.value) == (
        "activity 'NoSuchActivity' is not registered with this runtime "
        "(registered: count_runs, quick_sync)"
    )
