"""The workflow the SIGKILL tests run, in worker subprocesses and in-process.

Every activity execution appends ``start NAME PID`` and ``done NAME PID``
lines to the log file named in its input, so a test can tell which steps
ran again after a kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

STEP_SECONDS = 0.05
TIMER_SECONDS = 0.1
SLOW_SECONDS = 30.0  # the racing activity: always loses to the block

EXPECTED_OUTPUT = {
    "steps": ["s1-ok", "s2-ok", "s3-ok", "s4-ok"],
    "winner": 1,
    "block": ["b1-ok", "b2-ok"],
}
#: Activity names in scheduling order (one ActivityScheduled each).
SCHEDULED = ["s1", "s2", "s3", "slow", "b1", "b2", "s4"]


def record(log: str, line: str) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(f"{line} {os.getpid()}\n")


@perdure.activity(name="Step")
async def step(ctx: ActivityContext, arg: dict[str, Any]) -> str:
    name, log = arg["name"], arg["log"]
    record(log, f"start {name}")
    if name == "slow":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.cancelled, SLOW_SECONDS)
        record(log, f"cancelled {name}" if ctx.is_cancelled() else f"done {name}")
        return f"{name}-ok"
    await asyncio.sleep(STEP_SECONDS)
    record(log, f"done {name}")
    return f"{name}-ok"


def _step(ctx: OrchestrationContext, log: str, name: str) -> perdure.DurableFuture[Any]:
    return ctx.schedule_activity(step, {"log": log, "name": name})


async def _block(ctx: OrchestrationContext, log: str) -> list[str]:
    first = await _step(ctx, log, "b1")
    return [first, await _step(ctx, log, "b2")]


@perdure.orchestration(name="CrashFlow")
async def crash_flow(ctx: OrchestrationContext, log: str) -> dict[str, Any]:
    steps = [await _step(ctx, log, "s1"), await _step(ctx, log, "s2")]
    await ctx.schedule_timer(TIMER_SECONDS)
    steps.append(await _step(ctx, log, "s3"))
    slow = _step(ctx, log, "slow")
    winner, block = await ctx.select2(slow, durable_async(ctx, _block(ctx, log)))
    steps.append(await _step(ctx, log, "s4"))
    return {"steps": steps, "winner": winner, "block": block}


ORCHESTRATIONS: list[Callable[..., Any]] = [crash_flow]
ACTIVITIES: list[Callable[..., Any]] = [step]
