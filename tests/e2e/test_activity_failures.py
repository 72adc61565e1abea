"""Failures that explain themselves, and retries that know when to stop.

DESIGN §9: every failed activity attempt is logged once with its traceback
(WARNING when retried, ERROR when final) and the final failure reaches
history with its stack; `perdure.NonRetryableError` and
``RetryPolicy(non_retryable=...)`` end the retries at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from _helpers import WAIT, check_replay, run_to_end, runtime

import perdure
from perdure import ActivityContext, OrchestrationContext, RetryPolicy, events

#: Attempts seen per instance id.
ATTEMPTS: dict[str, list[int]] = {}


class Declined(perdure.NonRetryableError):
    """The card was declined: asking again will not help."""


class BadItem(LookupError):
    """An application error that a policy lists by a base class."""


class Unused(Exception):
    """Listed in a policy, never raised."""


def parse_amount(text: str) -> int:
    return int(text)  # raises ValueError on "lots"


@perdure.activity
async def charge(ctx: ActivityContext, amount: str) -> int:
    ATTEMPTS.setdefault(ctx.instance_id, []).append(ctx.attempt)
    return parse_amount(amount)


@perdure.activity
def charge_sync(ctx: ActivityContext, amount: str) -> int:
    ATTEMPTS.setdefault(ctx.instance_id, []).append(ctx.attempt)
    return parse_amount(amount)


@perdure.activity
async def decline(ctx: ActivityContext) -> None:
    ATTEMPTS.setdefault(ctx.instance_id, []).append(ctx.attempt)
    raise Declined("card 4242 declined")


@perdure.activity
async def raise_named(ctx: ActivityContext, kind: str) -> None:
    ATTEMPTS.setdefault(ctx.instance_id, []).append(ctx.attempt)
    errors: dict[str, Exception] = {
        "key": KeyError("sku-7"),
        "bad_item": BadItem("item 7 is malformed"),
        "value": ValueError("try again"),
    }
    raise errors[kind]


FAST_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.01)


@perdure.orchestration
async def pay(ctx: OrchestrationContext, job: dict[str, Any]) -> object:
    retry = RetryPolicy(**job["retry"]) if job.get("retry") else None
    name = charge_sync if job.get("sync") else charge
    try:
        return await ctx.schedule_activity(name, job["amount"], retry=retry)
    except perdure.ActivityFailed as exc:
        return {"type": exc.type, "message": exc.message, "stack": exc.stack}


@perdure.orchestration
async def pay_uncaught(ctx: OrchestrationContext, amount: str) -> int:
    return await ctx.schedule_activity(charge, amount)


@perdure.orchestration
async def pay_declined(ctx: OrchestrationContext) -> None:
    await ctx.schedule_activity(decline, retry=RetryPolicy(max_attempts=5))


#: The ``non_retryable`` entries of the running test (classes are not input).
LISTED: list[Any] = []


@perdure.orchestration
async def named(ctx: OrchestrationContext, kind: str) -> None:
    policy = RetryPolicy(
        max_attempts=3, initial_interval=0.01, non_retryable=tuple(LISTED)
    )
    await ctx.schedule_activity(raise_named, kind, retry=policy)


ORCHS: list[Callable[..., Any]] = [pay, pay_uncaught, pay_declined, named]
ACTS: list[Callable[..., Any]] = [charge, charge_sync, decline, raise_named]


def fresh(iid: str) -> str:
    """Forget the attempts of *iid* (each backend reuses the ids)."""
    ATTEMPTS.pop(iid, None)
    return iid


def failed_events(history: Iterable[perdure.Event]) -> list[dict[str, Any]]:
    return [e.error for e in history if isinstance(e, events.ActivityFailed)]


def worker_records(
    caplog: pytest.LogCaptureFixture, iid: str
) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "perdure.worker" and f"instance {iid}," in r.getMessage()
    ]


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_final_failure_stores_the_stack_and_replays(
    storage_url: str, sync: bool
) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        state = await run_to_end(client, iid, pay, {"amount": "lots", "sync": sync})
        return state.output

    output, history = await check_replay(storage_url, ORCHS, ACTS, scenario, "stack")
    assert isinstance(output, dict)
    assert output["type"] == "ValueError"
    (error,) = failed_events(history)
    stack = error["stack"]
    assert stack.startswith("Traceback (most recent call last):")
    assert "in parse_amount" in stack and "return int(text)" in stack
    assert stack.rstrip().endswith(
        "ValueError: invalid literal for int() with base 10: 'lots'"
    )
    # The runtime that called the activity is left out: the user's frames.
    assert "perdure/_activity.py" not in stack
    assert "perdure/_threads.py" not in stack


async def test_orchestration_code_sees_the_activity_stack(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, "seen", pay, {"amount": "lots"})
        history = await rt.client.get_history("seen")
    (error,) = failed_events(history)
    assert state.output == {
        "type": "ValueError",
        "message": error["message"],
        "stack": error["stack"],
    }


async def test_each_failed_attempt_is_logged_once_with_its_traceback(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="perdure")
    job = {"amount": "lots", "retry": {"max_attempts": 3, "initial_interval": 0.01}}
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, fresh("logged"), pay, job)
    assert state.status == "Completed"
    assert ATTEMPTS["logged"] == [1, 2, 3]
    records = worker_records(caplog, "logged")
    assert [r.levelno for r in records] == [logging.WARNING] * 2 + [logging.ERROR]
    for record, attempt in zip(records, (1, 2, 3), strict=True):
        assert f"attempt {attempt})" in record.getMessage()
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], ValueError)
        assert "in parse_amount" in caplog.text
    assert "retrying in" in records[0].getMessage()
    assert "failed for good (attempt 3 of 3)" in records[-1].getMessage()


async def test_uncaught_activity_failure_is_logged_and_explained(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, "uncaught", pay_uncaught, "lots")
        history = await rt.client.get_history("uncaught")
    assert state.status == "Failed" and state.error is not None
    assert state.error.type == "ValueError"
    (error,) = failed_events(history)
    assert "in parse_amount" in error["stack"]
    (record,) = worker_records(caplog, "uncaught")
    assert record.levelno == logging.ERROR
    assert "failed for good (no retry policy)" in record.getMessage()


async def test_non_retryable_error_stops_at_once(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, fresh("declined"), pay_declined)
        history = await rt.client.get_history("declined")
    assert ATTEMPTS["declined"] == [1]  # max_attempts=5 notwithstanding
    assert state.status == "Failed" and state.error is not None
    assert (state.error.type, state.error.message) == ("Declined", "card 4242 declined")
    (error,) = failed_events(history)
    assert "raise Declined" in error["stack"]
    (record,) = worker_records(caplog, "declined")
    assert "failed for good (Declined is not retryable)" in record.getMessage()


@pytest.mark.parametrize(
    ("kind", "listed", "attempts"),
    [
        pytest.param("key", [KeyError], [1], id="class"),
        pytest.param("key", ["KeyError"], [1], id="builtin-by-name"),
        pytest.param("bad_item", [LookupError], [1], id="base-class"),
        pytest.param("bad_item", ["LookupError"], [1], id="base-by-name"),
        pytest.param("bad_item", [BadItem], [1], id="qualified-class"),
        pytest.param("bad_item", [f"{__name__}.BadItem"], [1], id="qualified-name"),
        pytest.param("bad_item", ["elsewhere.BadItem"], [1, 2, 3], id="other-module"),
        pytest.param("value", [KeyError, Unused], [1, 2, 3], id="not-listed"),
    ],
)
async def test_non_retryable_policy(
    storage_url: str, kind: str, listed: list[Any], attempts: list[int]
) -> None:
    iid = fresh("named")
    LISTED[:] = listed
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, iid, named, kind)
    assert state.status == "Failed"
    assert ATTEMPTS[iid] == attempts


async def test_shutdown_is_not_a_failure(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An attempt interrupted by shutdown is given back, not logged as failed."""
    rt = runtime(storage_url, ORCHS, ACTS)
    await rt.start()
    await rt.client.start_orchestration("ok", pay, {"amount": "12"})
    await rt.client.wait_for_orchestration("ok", WAIT)
    await rt.shutdown(timeout=1.0)
    assert worker_records(caplog, "ok") == []
