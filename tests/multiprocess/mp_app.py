"""The workflow of the multi-process tests, and a runtime process to run it.

``python mp_app.py URL LOG [--slow]`` runs one runtime (role "all") on URL
until SIGTERM, printing ``ready`` once started. Every activity execution
appends ``[pid, time, instance, name, input, attempt]`` (JSON) to LOG, so a
test can tell which process ran what and what ran again after a kill.
``--slow`` makes every activity of this process take a second, so that it
always has activities in flight when the test kills it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

LOCK_TIMEOUT = 2.0
STEP_SECONDS = 0.01
SLOW_SECONDS = 1.0
LOSING_TIMER = 120.0

_log_path: str | None = None
_step_seconds = STEP_SECONDS


def expected(n: int) -> dict[str, Any]:
    """The output of ``MpFlow(n)``: the block (4n + 2) beats the long timer."""
    return {"n": n, "winner": 1, "value": 4 * n + 2}


def _note(ctx: ActivityContext, value: int) -> None:
    if _log_path is None:
        return
    line = [os.getpid(), time.time(), ctx.instance_id, ctx.activity_name, value]
    with open(_log_path, "a", encoding="utf-8") as file:
        file.write(json.dumps([*line, ctx.attempt]) + "\n")


@perdure.activity
async def double(ctx: ActivityContext, value: int) -> int:
    _note(ctx, value)
    await asyncio.sleep(_step_seconds)
    return 2 * value


@perdure.activity
async def add_one(ctx: ActivityContext, value: int) -> int:
    _note(ctx, value)
    await asyncio.sleep(_step_seconds)
    return value + 1


async def _block(ctx: OrchestrationContext, value: int) -> int:
    bigger = await ctx.schedule_activity(add_one, value)
    return await ctx.schedule_activity(double, bigger)


@perdure.orchestration(name="MpFlow")
async def mp_flow(ctx: OrchestrationContext, n: int) -> dict[str, Any]:
    doubled = await ctx.schedule_activity(double, n)
    await ctx.schedule_timer(0.1)
    winner, value = await ctx.select2(
        ctx.schedule_timer(LOSING_TIMER), durable_async(ctx, _block(ctx, doubled))
    )
    return {"n": n, "winner": winner, "value": value}


async def serve(url: str) -> None:
    """Run a runtime on *url* until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with perdure.Runtime(
        url,
        orchestrations=[mp_flow],
        activities=[double, add_one],
        lock_timeout=LOCK_TIMEOUT,
        poll_interval=0.5,
        orchestration_concurrency=25,
        # New instances are homed on one runtime while it keeps up
        # (_pg_members): with few slots per worker, the activities its
        # turns schedule overflow to the other processes' workers, so all
        # three (the slow victim included) run some.
        activity_concurrency=3,
    ):
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    _log_path = sys.argv[2]
    if "--slow" in sys.argv[3:]:
        _step_seconds = SLOW_SECONDS
    asyncio.run(serve(sys.argv[1]))
