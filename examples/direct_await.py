"""Awaiting a ``durable_async`` future directly (proposal "Direct Await").

``await durable_async(ctx, block)`` behaves exactly like running the block
inline: the same activities run in the same order with the same results,
and an exception raised in the block propagates to the awaiting code. The
only trace of the task in the history is the scope tag of the work it
scheduled. There is no benefit in doing this on its own - the task scope
pays off when the future is raced or joined (see the other examples) - but
it means a block written for ``select2`` can also simply be awaited.

Both orchestrations below produce the same output and the same sequence of
activity calls.

Run it: ``python examples/direct_await.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

WITH_TASK = "direct-await"
INLINE = "inline"


@perdure.activity(name="Step1")
async def step1(ctx: ActivityContext, value: str) -> str:
    return value + ">1"


@perdure.activity(name="Step2")
async def step2(ctx: ActivityContext, value: str) -> str:
    return value + ">2"


@perdure.activity(name="Step3")
async def step3(ctx: ActivityContext, value: str) -> str:
    return value + ">3"


async def first_two_steps(ctx: OrchestrationContext, value: str) -> str:
    a = await ctx.schedule_activity(step1, value)
    return await ctx.schedule_activity(step2, a)


@perdure.orchestration(name="WithTask")
async def with_task(ctx: OrchestrationContext, value: str) -> str:
    """Steps 1-2 in a task scope, awaited directly; then step 3."""
    result = await durable_async(ctx, first_two_steps(ctx, value))
    return await ctx.schedule_activity(step3, result)


@perdure.orchestration(name="Inline")
async def inline(ctx: OrchestrationContext, value: str) -> str:
    """The same three steps, written inline."""
    a = await ctx.schedule_activity(step1, value)
    b = await ctx.schedule_activity(step2, a)
    return await ctx.schedule_activity(step3, b)


async def run(db_url: str, **options: Any) -> dict[str, str]:
    """Run both orchestrations on *db_url*; return their outputs.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url,
        orchestrations=[with_task, inline],
        activities=[step1, step2, step3],
        **options,
    ) as rt:
        await rt.client.start_orchestration(WITH_TASK, with_task, "x")
        await rt.client.start_orchestration(INLINE, inline, "x")
        outputs = {}
        for instance in (WITH_TASK, INLINE):
            state = await rt.client.wait_for_orchestration(instance, timeout=30)
            if state.status != "Completed":
                raise RuntimeError(f"{instance} ended {state.status}: {state.error}")
            outputs[instance] = state.output
    return outputs


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for instance, output in asyncio.run(run(f"sqlite:///{tmp}/direct.db")).items():
            print(f"{instance}: {output}")


if __name__ == "__main__":
    main()
