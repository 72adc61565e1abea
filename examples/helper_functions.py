"""``durable_async`` over ordinary helper functions (proposal Example 6).

Orchestration logic can be split into plain ``async def`` helpers that take
the context. Work a helper schedules belongs to whichever task is running
it, so calling helpers from inside a ``durable_async`` block puts all of
their activities in that block's scope: if the block loses its race, the
helpers' in-flight calls are cancelled with it.

Two orders: the first is charged well within its timeout; the second one's
payment gateway hangs, so its (short) timeout wins: the in-flight ChargeCard
is cancelled, the completed validation steps are not, and the orchestration
fails with ``TimeoutError``.

Run it: ``python examples/helper_functions.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

PAID = "order-paid"
STALLED = "order-stalled"


@perdure.activity(name="ValidateCustomer")
async def validate_customer(ctx: ActivityContext, customer_id: str) -> str:
    return f"{customer_id}:valid"


@perdure.activity(name="CheckInventory")
async def check_inventory(ctx: ActivityContext, sku: str) -> str:
    return f"{sku}:in-stock"


@perdure.activity(name="ChargeCard")
async def charge_card(ctx: ActivityContext, payment: str) -> str:
    if payment == "slow-gateway":  # never answers; gives up when cancelled
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.cancelled, timeout=30)
    return f"{payment}:charged"


async def validate_order(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    customer = await ctx.schedule_activity(validate_customer, order["customer"])
    inventory = await ctx.schedule_activity(check_inventory, order["sku"])
    return f"{customer}:{inventory}"


async def process_payment(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    return await ctx.schedule_activity(charge_card, order["payment"])


async def process_order(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    validation = await validate_order(ctx, order)
    payment = await process_payment(ctx, order)
    return f"{validation}|{payment}"


@perdure.orchestration(name="OrderWorkflow")
async def order_workflow(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    """Validate and charge the order within ``order['timeout']`` seconds."""
    timeout = ctx.schedule_timer(order["timeout"])
    processing = durable_async(ctx, process_order(ctx, order))
    winner, output = await ctx.select2(timeout, processing)
    if winner == 0:
        raise TimeoutError("order processing timed out")
    return output


ORDERS = {
    PAID: {"customer": "c1", "sku": "s1", "payment": "visa", "timeout": 30},
    STALLED: {"customer": "c2", "sku": "s2", "payment": "slow-gateway", "timeout": 0.5},
}


async def run(db_url: str, **options: Any) -> dict[str, str]:
    """Run both orders on *db_url*; return output or error message per order.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url,
        orchestrations=[order_workflow],
        activities=[validate_customer, check_inventory, charge_card],
        **options,
    ) as rt:
        for instance, order in ORDERS.items():
            await rt.client.start_orchestration(instance, order_workflow, order)
        outcomes = {}
        for instance in ORDERS:
            state = await rt.client.wait_for_orchestration(instance, timeout=30)
            error = state.error
            outcomes[instance] = (
                state.output if error is None else f"{error.type}: {error.message}"
            )
    return outcomes


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for instance, outcome in asyncio.run(run(f"sqlite:///{tmp}/orders.db")).items():
            print(f"{instance}: {outcome}")


if __name__ == "__main__":
    main()
