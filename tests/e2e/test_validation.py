"""Durations and retry values that can never work are refused up front (probe F9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from _helpers import WAIT, runtime

import perdure
from perdure import OrchestrationContext, RetryPolicy


@perdure.orchestration(name="BadTimer")
async def bad_timer(ctx: OrchestrationContext, delay: str) -> str:
    await ctx.schedule_timer(float(delay))
    return "fired"


@perdure.orchestration(name="Fine")
async def fine(ctx: OrchestrationContext) -> str:
    await ctx.schedule_timer(0.01)
    return "fine"


@pytest.mark.parametrize("delay", ["nan", "inf", "-inf"])
async def test_a_timer_that_can_never_fire_fails_its_instance_clearly(
    storage_url: str, delay: str
) -> None:
    async with runtime(storage_url, [bad_timer, fine]) as rt:
        await rt.client.start_orchestration("bad", "BadTimer", delay)
        await rt.client.start_orchestration("fine", "Fine")
        bad = await rt.client.wait_for_orchestration("bad", timeout=WAIT)
        other = await rt.client.wait_for_orchestration("fine", timeout=WAIT)
        history = await rt.client.get_history("bad")
    assert other.output == "fine"
    assert bad.status == "Failed"
    assert bad.error is not None
    assert bad.error.type == "ValueError"
    assert "delay must be a finite number of seconds" in bad.error.message
    assert [e.type for e in history] == ["OrchestrationStarted", "OrchestrationFailed"]


@pytest.mark.parametrize(
    "options",
    [
        {"initial_interval": float("nan")},
        {"max_interval": float("inf")},
        {"backoff": float("inf"), "max_interval": float("inf")},
        {"max_attempts": float("nan")},
        {"max_attempts": "3"},
        {"max_attempts": True},
        {"timeout": float("nan")},
    ],
)
def test_retry_policies_that_cannot_work_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError), match="RetryPolicy"):
        RetryPolicy(**options)


def test_a_long_retry_series_is_capped_not_overflowed() -> None:
    policy = RetryPolicy(max_attempts=100_000, max_interval=30.0)
    assert policy.delay(50_000) == 30.0


async def test_client_wait_refuses_a_nan_timeout(sqlite_url: str) -> None:
    async with perdure.Client(sqlite_url) as client:
        await client.start_orchestration("x", "Fine")
        with pytest.raises(ValueError, match="finite"):
            await client.wait_for_orchestration("x", timeout=float("nan"))
        with pytest.raises(TimeoutError):
            await client.wait_for_orchestration("x", timeout=timedelta(0))


@pytest.mark.parametrize(
    ("instance_id", "message"),
    [
        ("", "non-empty"),
        ("a\x00b", "NUL"),
        ("x" * 513, "limit is 512"),
        ("caf\udce9", "lone surrogate"),
    ],
)
async def test_unusable_instance_ids_are_refused_on_every_backend(
    storage_url: str, instance_id: str, message: str
) -> None:
    async with perdure.Client(storage_url) as client:
        with pytest.raises(ValueError, match=message):
            await client.start_orchestration(instance_id, "Fine")
        assert (await client.list_instances()).items == []


async def test_event_names_must_be_usable(storage_url: str) -> None:
    async with perdure.Client(storage_url) as client:
        await client.start_orchestration("x", "Fine")
        before = await client.get_history("x")
        for name in (5, "", "e\x00"):
            with pytest.raises(ValueError, match="event name"):
                # 5 is deliberately not a str: the client must refuse it.
                await client.raise_event("x", name, None)  # type: ignore[arg-type]
        assert await client.get_history("x") == before
