"""Failures: application errors, unregistered handlers, nondeterminism."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from _helpers import (
    WAIT,
    Scenario,
    check_replay,
    eventually,
    of_type,
    outcome,
    run_to_end,
    runtime,
)

import perdure
from perdure import events as h
from perdure.providers import ActivityRouting, RoutesActivities


@perdure.activity
async def charge(ctx: perdure.ActivityContext, amount: int) -> None:
    raise ValueError("card declined")


@perdure.activity
def step_a(ctx: perdure.ActivityContext) -> str:
    return "a"


@perdure.activity
def step_b(ctx: perdure.ActivityContext) -> str:
    return "b"


@perdure.orchestration
async def broken(ctx: perdure.OrchestrationContext, message: str) -> None:
    raise ValueError(message)


@perdure.orchestration
async def pay(ctx: perdure.OrchestrationContext) -> None:
    await ctx.schedule_activity(charge, 10)


@perdure.orchestration
async def call_missing(ctx: perdure.OrchestrationContext, catch: bool) -> object:
    future = ctx.schedule_activity("NoSuchActivity", 1)
    if not catch:
        return await future
    try:
        await future
    except perdure.ActivityFailed as exc:
        return [exc.name, exc.type, str(exc)]
    raise AssertionError("unreachable")


ORCHS: list[Callable[..., Any]] = [broken, pay, call_missing]
ACTS: list[Callable[..., Any]] = [charge, step_a, step_b]


def start_and_wait(name: str | Callable[..., Any], input: object = None) -> Scenario:
    async def scenario(client: perdure.Client, iid: str) -> object:
        return outcome(await run_to_end(client, iid, name, input))

    return scenario


async def test_orchestration_exception_fails_instance(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, start_and_wait(broken, "bad total"), "broken"
    )
    assert summary == {
        "status": "Failed",
        "output": None,
        "error": {
            "type": "ValueError",
            "message": "bad total",
            "category": "application",
        },
    }
    assert isinstance(history[-1], h.OrchestrationFailed)
    assert history[-1].error["message"] == "bad total"


async def test_activity_error_surfaces_with_original_message(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, start_and_wait(pay), "pay"
    )
    assert summary["status"] == "Failed"
    assert "card declined" in summary["error"]["message"]
    assert summary["error"]["category"] == "application"
    (failed,) = of_type(history, h.ActivityFailed)
    stack = failed.error.pop("stack")
    assert failed.error == {
        "type": "ValueError",
        "message": "card declined",
        "category": "application",
    }
    assert stack.splitlines()[-1] == "ValueError: card declined"
    assert 'raise ValueError("card declined")' in stack


@perdure.activity(name="NoSuchActivity")
async def found_later(ctx: perdure.ActivityContext, n: int) -> int:
    return n + 1


async def test_unknown_activity_waits_for_a_runtime_that_has_it(
    storage_url: str,
) -> None:
    # A runtime never takes an activity it did not register (docs/routing.md):
    # the item waits, untaken, until a runtime that has it starts.
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        await rt.client.start_orchestration("ua", call_missing, False)
        routes = rt.provider
        assert isinstance(routes, RoutesActivities)
        mine = ActivityRouting(names=("charge",))

        async def untaken() -> bool:
            waiting = await routes.waiting_activities(mine, 0.0)
            return waiting == [("NoSuchActivity", None, 1)]

        await eventually(untaken, "the untaken item")
        await asyncio.sleep(0.3)  # several fetches of this runtime
        assert await untaken()
        state = await rt.client.get_status("ua")
        assert state is not None and state.status == "Running"
    async with runtime(storage_url, ORCHS, [*ACTS, found_later]) as rt:
        state = await rt.client.wait_for_orchestration("ua", timeout=WAIT)
    assert (state.status, state.output) == ("Completed", 2)


# Unregistered orchestration versions and changed code (nondeterminism) no
# longer fail an instance: see test_deploy_safety.py (DESIGN §9).
