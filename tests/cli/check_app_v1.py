"""The code that wrote the histories `perdure check` is tested on (v1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext


@perdure.activity
def reserve(ctx: ActivityContext, order: str) -> str:
    return f"reserved {order}"


@perdure.activity
def charge(ctx: ActivityContext, order: str) -> str:
    return f"charged {order}"


@perdure.activity
def ship(ctx: ActivityContext, order: str) -> str:
    return f"shipped {order}"


@perdure.orchestration(name="Order")  # version 1.0.0
async def order(ctx: OrchestrationContext, order: str) -> list[str]:
    await ctx.schedule_wait("go")
    done = [
        await ctx.schedule_activity(reserve, order),
        await ctx.schedule_activity(charge, order),
    ]
    await ctx.schedule_wait("ship")
    done.append(await ctx.schedule_activity(ship, order))
    return done


@perdure.orchestration(name="Order", version="0.9.0")
async def order_0_9(ctx: OrchestrationContext, order: str) -> list[str]:
    await ctx.schedule_wait("go")
    return [await ctx.schedule_activity(ship, order)]


@perdure.orchestration(name="Report")
async def report(ctx: OrchestrationContext) -> str:
    await ctx.schedule_wait("go")
    return "report"


ORCHESTRATIONS: list[Callable[..., Any]] = [order, order_0_9, report]
ACTIVITIES: list[Callable[..., Any]] = [reserve, charge, ship]
