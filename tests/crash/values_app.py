"""The workflow the instance-values crash test runs (worker subprocesses).

``Tally`` works through ``STEPS`` steps per round, recording its progress
with ``ctx.set_value`` around each activity, and continues as new once
(round 0 -> round 1) so the values are carried over mid-test. Every step
execution appends ``start N PID`` and ``done N PID`` to the log file named
in its input.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

STEPS = 3
ROUNDS = 2
STEP_SECONDS = 0.05

#: The values the instance ends with.
EXPECTED_VALUES = {
    "round": ROUNDS - 1,
    "done": [f"{r}.{i}" for r in range(ROUNDS) for i in range(STEPS)],
    "status": "finished",
}


def record(log: str, line: str) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(f"{line} {os.getpid()}\n")


@perdure.activity(name="TallyStep")
async def tally_step(ctx: ActivityContext, arg: dict[str, Any]) -> str:
    record(arg["log"], f"start {arg['step']}")
    await asyncio.sleep(STEP_SECONDS)
    record(arg["log"], f"done {arg['step']}")
    return str(arg["step"])


@perdure.orchestration(name="Tally")
async def tally(ctx: OrchestrationContext, arg: dict[str, Any]) -> int:
    log, round_ = arg["log"], arg["round"]
    ctx.set_value("round", round_)
    for i in range(STEPS):
        ctx.set_value("status", f"running {round_}.{i}")
        done = await ctx.schedule_activity(
            tally_step, {"log": log, "step": f"{round_}.{i}"}
        )
        ctx.set_value("done", [*ctx.get_value("done", []), done])
    if round_ + 1 < ROUNDS:
        ctx.continue_as_new({"log": log, "round": round_ + 1})
    ctx.set_value("status", "finished")
    return len(ctx.get_value("done"))


ORCHESTRATIONS: list[Callable[..., Any]] = [tally]
ACTIVITIES: list[Callable[..., Any]] = [tally_step]
