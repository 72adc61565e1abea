"""Race two multi-step pipelines against each other (proposal Example 3).

Both arguments of ``select2`` are ``durable_async`` blocks. Path A is three
quick steps; path B does one step, then waits on a durable timer before its
second step. Path A finishes while B is still sleeping, so B loses: its
pending timer is cancelled (B1, which had already completed, is not), and
B2 is never scheduled because ``perdure.Cancelled`` is thrown into the block
at the timer's await.

Tasks start eagerly: A1 and B1 are both scheduled in the orchestration's
first turn, before ``select2`` is even called.

Run it: ``python examples/racing_two_pipelines.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

INSTANCE = "dual-path-1"


@perdure.activity(name="A1")
async def a1(ctx: ActivityContext, value: str) -> str:
    await asyncio.sleep(0.1)
    return value + ">a1"


@perdure.activity(name="A2")
async def a2(ctx: ActivityContext, value: str) -> str:
    await asyncio.sleep(0.1)
    return value + ">a2"


@perdure.activity(name="A3")
async def a3(ctx: ActivityContext, value: str) -> str:
    await asyncio.sleep(0.1)
    return value + ">a3"


@perdure.activity(name="B1")
async def b1(ctx: ActivityContext, value: str) -> str:
    return value + ">b1"


@perdure.activity(name="B2")
async def b2(ctx: ActivityContext, value: str) -> str:
    return value + ">b2"


async def path_a(ctx: OrchestrationContext, value: str) -> str:
    x = await ctx.schedule_activity(a1, value)
    y = await ctx.schedule_activity(a2, x)
    return "path_a:" + await ctx.schedule_activity(a3, y)


async def path_b(ctx: OrchestrationContext, value: str) -> str:
    x = await ctx.schedule_activity(b1, value)
    await ctx.schedule_timer(5)  # e.g. a rate limit before the next call
    return "path_b:" + await ctx.schedule_activity(b2, x)


@perdure.orchestration(name="DualPath")
async def dual_path(ctx: OrchestrationContext, value: str) -> str:
    """Return the result of whichever path finishes first."""
    winner, output = await ctx.select2(
        durable_async(ctx, path_a(ctx, value)),
        durable_async(ctx, path_b(ctx, value)),
    )
    ctx.trace_info(f"path {'AB'[winner]} won")
    return output


async def run(db_url: str, **options: Any) -> str:
    """Run one DualPath instance on *db_url*; return its output.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url, orchestrations=[dual_path], activities=[a1, a2, a3, b1, b2], **options
    ) as rt:
        await rt.client.start_orchestration(INSTANCE, dual_path, "input")
        state = await rt.client.wait_for_orchestration(INSTANCE, timeout=30)
    if state.status != "Completed":
        raise RuntimeError(f"{INSTANCE} ended {state.status}: {state.error}")
    return state.output


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(asyncio.run(run(f"sqlite:///{tmp}/dual_path.db")))


if __name__ == "__main__":
    main()
