"""The two code versions the rewind crash test runs (worker subprocesses).

``perdure worker rewind_app:BUGGY`` fails ``RewindFlow`` once its timer
fires, with step ``b`` running; ``rewind_app:FIXED`` is the fix, under the
same name and version. Every activity execution appends ``start NAME PID``
and ``done NAME PID`` to the log file named in its input. With
``REWIND_SLOW`` in its environment, the fixed code logs ``rewinding PID``
and sleeps in the step the failure interrupted, when it runs live: that is
the rewind turn, and the test kills the worker in it.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext


def record(log: str, line: str) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(f"{line} {os.getpid()}\n")


@perdure.activity(name="Step")
async def step(ctx: ActivityContext, arg: dict[str, Any]) -> str:
    name, log = arg["name"], arg["log"]
    record(log, f"start {name}")
    await asyncio.sleep(arg.get("seconds", 0.05))
    record(log, f"done {name}")
    return f"{name}-ok"


def _step(ctx: OrchestrationContext, log: str, name: str, seconds: float = 0.05) -> Any:
    return ctx.schedule_activity(step, {"log": log, "name": name, "seconds": seconds})


@perdure.orchestration(name="RewindFlow")
async def buggy(ctx: OrchestrationContext, log: str) -> list[str]:
    a = await _step(ctx, log, "a")
    _step(ctx, log, "b", seconds=0.5)
    await ctx.schedule_timer(0.1)
    raise KeyError(a)  # the bug: b is running


@perdure.orchestration(name="RewindFlow")
async def fixed(ctx: OrchestrationContext, log: str) -> list[str]:
    a = await _step(ctx, log, "a")
    b = _step(ctx, log, "b", seconds=0.5)
    await ctx.schedule_timer(0.1)
    if os.environ.get("REWIND_SLOW") and not ctx.is_replaying:
        record(log, "rewinding")
        time.sleep(30)  # noqa: ASYNC251 (killed here, in the rewind turn)
    c = await _step(ctx, log, "c")
    return [a, await b, c]


BUGGY: dict[str, Any] = {"orchestrations": [buggy], "activities": [step]}
FIXED: dict[str, Any] = {"orchestrations": [fixed], "activities": [step]}
