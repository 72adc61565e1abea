"""Handlers the CLI tests run (in-process and in `perdure worker` subprocesses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async


@perdure.activity
def hello(ctx: ActivityContext, name: str) -> str:
    return f"hello {name}"


@perdure.activity
def explode(ctx: ActivityContext, message: str) -> str:
    raise ValueError(message)


async def _greet_twice(ctx: OrchestrationContext, name: str) -> str:
    first = await ctx.schedule_activity(hello, name)
    return first + "!" + await ctx.schedule_activity(hello, first)


@perdure.orchestration(name="Greet")
async def greet(ctx: OrchestrationContext, name: str) -> str:
    slow = ctx.schedule_timer(3600)
    _, value = await ctx.select2(slow, durable_async(ctx, _greet_twice(ctx, name)))
    return str(value)


@perdure.orchestration(name="WaitFor")
async def wait_for(ctx: OrchestrationContext) -> Any:
    return await ctx.schedule_wait("go")


@perdure.orchestration(name="Forever")
async def forever(ctx: OrchestrationContext) -> None:
    await ctx.schedule_timer(3600)


@perdure.orchestration(name="Fail")
async def fail(ctx: OrchestrationContext, message: str) -> str:
    return str(await ctx.schedule_activity(explode, message))


ORCHESTRATIONS: list[Callable[..., Any]] = [greet, wait_for, forever, fail]
ACTIVITIES: list[Callable[..., Any]] = [hello, explode]
