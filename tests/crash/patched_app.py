"""The two code versions the ctx.patched crash test deploys (worker subprocesses).

``perdure worker patched_app:V1`` runs the code from before the patch,
``patched_app:V2`` the code with ``ctx.patched("audit")``: both register
``PatchedFlow`` 1.0.0. Every activity execution appends ``start NAME PID``
and ``done NAME PID`` to the log file named in its input.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

STEP_SECONDS = 0.05


def record(log: str, line: str) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(f"{line} {os.getpid()}\n")


@perdure.activity(name="Step")
async def step(ctx: ActivityContext, arg: dict[str, Any]) -> str:
    name, log = arg["name"], arg["log"]
    record(log, f"start {name}")
    await asyncio.sleep(STEP_SECONDS)
    record(log, f"done {name}")
    return f"{name}-ok"


def _step(ctx: OrchestrationContext, log: str, name: str) -> Any:
    return ctx.schedule_activity(step, {"log": log, "name": name})


@perdure.orchestration(name="PatchedFlow")
async def flow_v1(ctx: OrchestrationContext, log: str) -> dict[str, Any]:
    steps = [await _step(ctx, log, "a"), await _step(ctx, log, "b")]
    await ctx.schedule_timer(0.1)
    steps.append(await _step(ctx, log, "c"))
    return {"steps": steps, "audited": []}


@perdure.orchestration(name="PatchedFlow")
async def flow_v2(ctx: OrchestrationContext, log: str) -> dict[str, Any]:
    steps = [await _step(ctx, log, "a")]
    audited = [ctx.patched("audit")]
    if audited[-1]:
        steps.append(await _step(ctx, log, "audit"))
    steps.append(await _step(ctx, log, "b"))
    await ctx.schedule_timer(0.1)
    audited.append(ctx.patched("audit"))  # the same answer, after a crash too
    steps.append(await _step(ctx, log, "c"))
    return {"steps": steps, "audited": audited}


V1: dict[str, Any] = {"orchestrations": [flow_v1], "activities": [step]}
V2: dict[str, Any] = {"orchestrations": [flow_v2], "activities": [step]}
