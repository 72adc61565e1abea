"""The saga the compensation crash test runs, in worker subprocesses and in-process.

The shape of examples/saga.py: Reserve, Charge, Ship under ``ctx.timeout``;
Ship is too slow for the deadline, so the booking is cancelled and undoes
the three steps in reverse (Recall, Refund, Release) inside a shield. One
activity, ``Step``, plays every step; each execution appends
``start NAME PID`` and ``done NAME PID`` (``cancelled NAME PID`` for a
cancelled Ship) to the file named by ``$SAGA_CRASH_LOG``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

LOG_ENV = "SAGA_CRASH_LOG"
STEP_SECONDS = 0.1
SLOW_SECONDS = 30.0  # Ship: always cut short by the deadline
DEADLINE = 1.5  # Reserve and Charge (0.1 s each) finish first even on a loaded machine

STEPS = [("Reserve", "Release"), ("Charge", "Refund"), ("Ship", "Recall")]
EXPECTED_OUTPUT = "timed out; undone"
#: Step names in scheduling order (one ActivityScheduled each).
SCHEDULED = ["Reserve", "Charge", "Ship", "Recall", "Refund", "Release"]
UNDO = SCHEDULED[3:]


def record(line: str) -> None:
    with open(os.environ[LOG_ENV], "a", encoding="utf-8") as file:
        file.write(f"{line} {os.getpid()}\n")


@perdure.activity(name="Step")
async def step(ctx: ActivityContext, name: str) -> str:
    record(f"start {name}")
    if name == "Ship":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.cancelled, SLOW_SECONDS)
        record(f"cancelled {name}" if ctx.is_cancelled() else f"done {name}")
        return name
    await asyncio.sleep(STEP_SECONDS)
    record(f"done {name}")
    return name


async def book(ctx: OrchestrationContext) -> None:
    undo: list[str] = []
    try:
        for name, compensation in STEPS:
            undo.append(compensation)
            await ctx.schedule_activity(step, name)
    except (perdure.Cancelled, perdure.ActivityFailed):
        async with ctx.shield():
            for compensation in reversed(undo):
                await ctx.schedule_activity(step, compensation)
        raise


@perdure.orchestration(name="SagaCrash")
async def saga_crash(ctx: OrchestrationContext, _: None) -> str:
    try:
        await ctx.timeout(DEADLINE, book(ctx))
    except perdure.DurableTimeout:
        return EXPECTED_OUTPUT
    return "shipped"


ORCHESTRATIONS: list[Callable[..., Any]] = [saga_crash]
ACTIVITIES: list[Callable[..., Any]] = [step]
