"""A long activity for the crash tests of idempotency keys and heartbeats.

``Transfer`` works through ``STEPS`` steps, heartbeating its progress
after each, and appends one JSON line per attempt start (attempt, key,
details) and per step to the log file named in its input, so a test can
compare what an attempt after a SIGKILL saw with what the killed one did.
Its second attempt fails once on purpose (a plain retry follows).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, RetryPolicy

STEPS = 40
STEP_SECONDS = 0.05


def record(log: str, **fields: Any) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(json.dumps({**fields, "pid": os.getpid()}) + "\n")


@perdure.activity(name="Transfer")
async def transfer(ctx: ActivityContext, log: str) -> int:
    details = ctx.heartbeat_details
    record(
        log,
        event="start",
        attempt=ctx.attempt,
        key=ctx.idempotency_key,
        details=details,
    )
    if ctx.attempt == 2:
        raise ConnectionError("the bank hung up")  # retried: attempt 3
    first = 0 if details is None else details["step"] + 1
    for step in range(first, STEPS):
        await asyncio.sleep(STEP_SECONDS)
        record(log, event="step", attempt=ctx.attempt, step=step)
        ctx.heartbeat({"step": step})
    return first


@perdure.orchestration(name="Payout")
async def payout(ctx: OrchestrationContext, log: str) -> int:
    retry = RetryPolicy(max_attempts=5, initial_interval=0.05)
    return await ctx.schedule_activity(transfer, log, retry=retry)


ORCHESTRATIONS: list[Callable[..., Any]] = [payout]
ACTIVITIES: list[Callable[..., Any]] = [transfer]
