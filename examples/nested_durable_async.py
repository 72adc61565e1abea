"""Nested ``durable_async`` blocks (proposal Example 5).

The outer block races an inner block (InnerA1 then InnerA2) against an
activity, InnerB, that the outer block schedules itself. Ownership follows
who was running when the work was created, not a global "current scope":
InnerB belongs to the outer block even though it is scheduled right after
the inner block was opened. So when InnerB wins the inner race, only the
inner block's work (the hanging InnerA1) is cancelled; InnerB stays a
completed winner and Finalize runs with its result. (The proposal's
scope-stack design would wrongly cancel InnerB here.)

The second instance shows the cascade: when the overall timeout fires while
the inner race is still pending, cancelling the outer block cancels
everything in flight beneath it - InnerB in the outer scope and InnerA1 in
the nested one.

Run it: ``python examples/nested_durable_async.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

FAST = "nested-inner-b-wins"
SLOW = "nested-timed-out"


async def hang_until_cancelled(ctx: ActivityContext) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctx.cancelled, timeout=30)


@perdure.activity(name="Setup")
async def setup(ctx: ActivityContext, job: str) -> str:
    return f"{job}:ready"


@perdure.activity(name="InnerA1")
async def inner_a1(ctx: ActivityContext, setup: str) -> str:
    await hang_until_cancelled(ctx)  # path A never wins in this demo
    return f"{setup}>a1"


@perdure.activity(name="InnerA2")
async def inner_a2(ctx: ActivityContext, value: str) -> str:
    return f"{value}>a2"


@perdure.activity(name="InnerB")
async def inner_b(ctx: ActivityContext, setup: str) -> str:
    if setup.startswith("slow"):
        await hang_until_cancelled(ctx)
    return f"{setup}>b"


@perdure.activity(name="Finalize")
async def finalize(ctx: ActivityContext, value: str) -> str:
    return f"{value}>final"


async def path_a(ctx: OrchestrationContext, setup_result: str) -> str:
    x = await ctx.schedule_activity(inner_a1, setup_result)
    return await ctx.schedule_activity(inner_a2, x)


async def outer_block(ctx: OrchestrationContext, job: str) -> str:
    setup_result = await ctx.schedule_activity(setup, job)
    inner_a = durable_async(ctx, path_a(ctx, setup_result))  # nested scope
    inner_b_call = ctx.schedule_activity(inner_b, setup_result)  # outer scope
    _, inner_result = await ctx.select2(inner_a, inner_b_call)
    return await ctx.schedule_activity(finalize, inner_result)


@perdure.orchestration(name="NestedScopes")
async def nested_scopes(ctx: OrchestrationContext, job: dict[str, Any]) -> str:
    """Run the outer block under an overall timeout."""
    outer = durable_async(ctx, outer_block(ctx, job["name"]))
    timeout = ctx.schedule_timer(job["timeout"])
    winner, output = await ctx.select2(timeout, outer)
    return "timed out" if winner == 0 else output


async def run(db_url: str, **options: Any) -> dict[str, str]:
    """Run both instances on *db_url*; return their outputs.

    *options* are passed to `perdure.Runtime`.
    """
    jobs = {
        FAST: {"name": "fast-job", "timeout": 60},
        SLOW: {"name": "slow-job", "timeout": 0.5},
    }
    async with perdure.Runtime(
        db_url,
        orchestrations=[nested_scopes],
        activities=[setup, inner_a1, inner_a2, inner_b, finalize],
        **options,
    ) as rt:
        for instance, job in jobs.items():
            await rt.client.start_orchestration(instance, nested_scopes, job)
        outputs = {}
        for instance in jobs:
            state = await rt.client.wait_for_orchestration(instance, timeout=30)
            if state.status != "Completed":
                raise RuntimeError(f"{instance} ended {state.status}: {state.error}")
            outputs[instance] = state.output
    return outputs


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for instance, output in asyncio.run(run(f"sqlite:///{tmp}/nested.db")).items():
            print(f"{instance}: {output}")


if __name__ == "__main__":
    main()
