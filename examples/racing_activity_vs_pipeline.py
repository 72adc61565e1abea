"""Race a single activity against a multi-step pipeline (proposal Example 1).

``durable_async(ctx, coro)`` turns an inline async block - here the helper
coroutine ``full_validation`` - into a durable future that ``select2`` can
race against a plain activity. The block starts at once and runs until its
first await, so its first step is scheduled right away.

When the quick check wins, the pipeline's scope is cancelled: every piece of
work it still has in flight is cancelled (here the slow CreditCheck, which
notices through ``ctx.cancelled`` and stops early), while the steps it
already finished (ValidateCustomer) stay as they are. ReserveInventory is
never scheduled: ``perdure.Cancelled`` is thrown into the block at its await.

Run it: ``python examples/racing_activity_vs_pipeline.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

INSTANCE = "order-1"
ORDER = {"id": "o-17", "customer": "c-42", "sku": "sku-9"}


@perdure.activity(name="QuickCheck")
async def quick_check(ctx: ActivityContext, order_id: str) -> str:
    await asyncio.sleep(0.3)  # a cache lookup: quick, but not instant
    return f"{order_id}:ok"


@perdure.activity(name="ValidateCustomer")
async def validate_customer(ctx: ActivityContext, customer_id: str) -> str:
    return f"{customer_id}:valid"


@perdure.activity(name="CreditCheck")
async def credit_check(ctx: ActivityContext, customer: str) -> str:
    # The credit bureau is slow today. Stop as soon as the orchestration
    # cancels this call (cooperative cancellation) instead of wasting time.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctx.cancelled, timeout=30)
    return f"{customer}:credit-ok"


@perdure.activity(name="ReserveInventory")
async def reserve_inventory(ctx: ActivityContext, sku: str) -> str:
    return f"{sku}:reserved"


async def full_validation(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    """Three sequential steps; used as a durable task scope below."""
    customer = await ctx.schedule_activity(validate_customer, order["customer"])
    credit = await ctx.schedule_activity(credit_check, customer)
    inventory = await ctx.schedule_activity(reserve_inventory, order["sku"])
    return f"{credit}:{inventory}"


@perdure.orchestration(name="OrderWorkflow")
async def order_workflow(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    """Accept the order on whichever check answers first."""
    quick = ctx.schedule_activity(quick_check, order["id"])
    full = durable_async(ctx, full_validation(ctx, order))
    winner, output = await ctx.select2(quick, full)
    return f"quick:{output}" if winner == 0 else f"validated:{output}"


async def run(db_url: str, **options: Any) -> str:
    """Run one OrderWorkflow instance on *db_url*; return its output.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url,
        orchestrations=[order_workflow],
        activities=[quick_check, validate_customer, credit_check, reserve_inventory],
        **options,
    ) as rt:
        await rt.client.start_orchestration(INSTANCE, order_workflow, ORDER)
        state = await rt.client.wait_for_orchestration(INSTANCE, timeout=30)
    if state.status != "Completed":
        raise RuntimeError(f"{INSTANCE} ended {state.status}: {state.error}")
    return state.output


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(asyncio.run(run(f"sqlite:///{tmp}/order.db")))


if __name__ == "__main__":
    main()
