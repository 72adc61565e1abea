"""Heartbeats, idempotency keys and leases given back at shutdown (DESIGN §9).

Every test runs on SQLite and PostgreSQL. The crash variants (a runtime
killed mid-activity) are in tests/crash/test_activity_crash.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from _helpers import WAIT, check_replay, eventually, run_to_end, runtime

import perdure
from perdure import ActivityContext, OrchestrationContext, RetryPolicy

#: What each attempt saw, per instance id: (attempt, key, heartbeat_details).
SEEN: dict[str, list[tuple[int, str, Any]]] = {}
RETRY = RetryPolicy(max_attempts=3, initial_interval=0.01)


def seen(ctx: ActivityContext) -> None:
    entry = (ctx.attempt, ctx.idempotency_key, ctx.heartbeat_details)
    SEEN.setdefault(ctx.instance_id, []).append(entry)


def fresh(iid: str) -> str:
    SEEN.pop(iid, None)
    return iid


@perdure.activity
async def goes_quiet(ctx: ActivityContext) -> Any:
    """Attempt 1 reports progress, then hangs without heartbeating."""
    seen(ctx)
    if ctx.attempt == 1:
        for step in range(3):
            ctx.heartbeat({"step": step})
        ctx.heartbeat()  # liveness only: keeps {"step": 2}
        await asyncio.sleep(60)
    return ctx.heartbeat_details


@perdure.activity
def goes_quiet_sync(ctx: ActivityContext) -> Any:
    seen(ctx)
    if ctx.attempt == 1:
        ctx.heartbeat(["page", 7])
        while not ctx.is_cancelled():  # told when the attempt is given up
            time.sleep(0.01)
        return "too late"
    return ctx.heartbeat_details


@perdure.activity
async def beats_steadily(ctx: ActivityContext, seconds: float) -> int:
    seen(ctx)
    beats = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.heartbeat(beats)
        beats += 1
        await asyncio.sleep(0.02)
    return beats


@perdure.activity
async def fails_once(ctx: ActivityContext) -> Any:
    """Heartbeats without a heartbeat_timeout, then fails: a plain retry."""
    seen(ctx)
    if ctx.attempt == 1:
        ctx.heartbeat({"done": ["a", "b"]})
        raise ConnectionError("the service hung up")
    return ctx.heartbeat_details


@perdure.activity
async def bad_details(ctx: ActivityContext) -> str:
    try:
        ctx.heartbeat({"when": object()})
    except perdure.PayloadError as exc:
        return str(exc)
    return "accepted"


@perdure.activity
async def keyed(ctx: ActivityContext, n: int) -> str:
    seen(ctx)
    return ctx.idempotency_key


@perdure.orchestration
async def quiet(ctx: OrchestrationContext, sync: bool) -> Any:
    name = goes_quiet_sync if sync else goes_quiet
    return await ctx.schedule_activity(name, retry=RETRY, heartbeat_timeout=0.3)


@perdure.orchestration
async def quiet_no_retry(ctx: OrchestrationContext) -> Any:
    return await ctx.schedule_activity(goes_quiet, heartbeat_timeout=0.2)


@perdure.orchestration
async def steady(ctx: OrchestrationContext, seconds: float) -> int:
    return await ctx.schedule_activity(beats_steadily, seconds, heartbeat_timeout=0.3)


@perdure.orchestration
async def retried(ctx: OrchestrationContext) -> Any:
    return await ctx.schedule_activity(fails_once, retry=RETRY)


@perdure.orchestration
async def payload(ctx: OrchestrationContext) -> str:
    return await ctx.schedule_activity(bad_details)


@perdure.orchestration
async def two_keys(ctx: OrchestrationContext) -> list[str]:
    first = ctx.schedule_activity(keyed, 1)
    second = ctx.schedule_activity(keyed, 1)  # same input, another activity
    return list(await ctx.join(first, second))


ORCHS: list[Callable[..., Any]] = [
    quiet,
    quiet_no_retry,
    steady,
    retried,
    payload,
    two_keys,
]
ACTS: list[Callable[..., Any]] = [
    goes_quiet,
    goes_quiet_sync,
    beats_steadily,
    fails_once,
    bad_details,
    keyed,
]


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_silent_attempt_times_out_and_the_retry_gets_its_details(
    storage_url: str, sync: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        state = await run_to_end(client, fresh(iid), quiet, sync)
        attempts = SEEN[iid]
        return {
            "output": state.output,
            "attempts": [attempt for attempt, _, _ in attempts],
            "details": [details for _, _, details in attempts],
            "keys": len({key for _, key, _ in attempts}),
        }

    summary, _ = await check_replay(storage_url, ORCHS, ACTS, scenario, "quiet")
    last = ["page", 7] if sync else {"step": 2}
    assert summary == {
        "output": last,
        "attempts": [1, 2],
        "details": [None, last],  # the next attempt resumes from here
        "keys": 1,  # one scheduled activity, one key
    }
    timeouts = [r for r in caplog.records if "sent no heartbeat" in r.getMessage()]
    assert timeouts and all(r.levelno == logging.WARNING for r in timeouts)
    assert "heartbeat_timeout" in timeouts[0].getMessage()


async def test_silent_attempt_without_retry_fails_as_a_timeout(
    storage_url: str,
) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, fresh("quiet-final"), quiet_no_retry)
    assert state.status == "Failed" and state.error is not None
    assert state.error.type == "TimeoutError"
    assert "sent no heartbeat for 0.2 s" in state.error.message


async def test_steady_heartbeats_keep_a_long_attempt_alive(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, fresh("steady"), steady, 1.0)
    assert state.status == "Completed", state.error
    assert state.output > 10
    assert [attempt for attempt, _, _ in SEEN["steady"]] == [1]


async def test_details_reach_a_plain_retry(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, fresh("retried"), retried)
    assert state.output == {"done": ["a", "b"]}
    keys = {key for _, key, _ in SEEN["retried"]}
    assert len(keys) == 1 and keys.pop().startswith("retried:1:2:")


async def test_unencodable_details_fail_the_heartbeat_call(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, "payload", payload)
    assert "heartbeat details of activity 'bad_details'" in state.output
    assert "not serialisable" in state.output


async def test_idempotency_keys_differ_per_activity_and_per_instance(
    storage_url: str,
) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        first = await run_to_end(rt.client, "keys", two_keys)
        await rt.client.delete_instance("keys")
        # The same id again: a new instance, so new keys.
        again = await run_to_end(rt.client, "keys", two_keys)
    one, two = first.output
    assert one.startswith("keys:1:2:") and two.startswith("keys:1:3:")
    assert len({one, two, *again.output}) == 4


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_shutdown_gives_leases_back_at_once(storage_url: str, sync: bool) -> None:
    """A runtime that stops hands its unfinished activities over at once.

    ``lock_timeout`` is a minute: the next runtime runs attempt 2 long
    before that, and gets the details attempt 1 reported last.
    """
    iid = fresh(f"handover-{'sync' if sync else 'async'}")
    options: dict[str, Any] = {"lock_timeout": 60.0}
    rt = runtime(storage_url, ORCHS, ACTS, **options)
    await rt.start()
    await rt.client.start_orchestration(iid, quiet, sync)
    await eventually(lambda: SEEN.get(iid), "attempt 1 to start")
    await asyncio.sleep(0.05)  # it heartbeats its details
    stopped = time.monotonic()
    await rt.shutdown(timeout=0.05)
    async with runtime(storage_url, ORCHS, ACTS, **options) as again:
        await eventually(lambda: len(SEEN[iid]) == 2, "attempt 2 to start")
        took_over = time.monotonic() - stopped
        state = await again.client.wait_for_orchestration(iid, WAIT)
    assert took_over < 10, took_over  # not after lock_timeout (60 s)
    last = ["page", 7] if sync else {"step": 2}
    assert state.output == last
    (_, key1, _), (attempt, key2, details) = SEEN[iid]
    assert (attempt, details, key2) == (2, last, key1)
