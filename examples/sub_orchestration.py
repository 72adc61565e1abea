"""Sub-orchestrations: a parent workflow runs child workflows and handles failures.

``ctx.schedule_sub_orchestration`` starts a child instance (with its own
history) and returns a durable future for its output. Here the parent ships
several orders in parallel, one child per order, and joins them with
``return_exceptions=True`` so one failed order does not stop the others. A
failed child surfaces as ``perdure.SubOrchestrationFailed`` carrying the
child's error (its message includes the original exception's text).

The child compensates for itself: if charging the card fails it releases
the stock it reserved, then re-raises so the parent sees the failure.

Run it: ``python examples/sub_orchestration.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

INSTANCE = "shipping-batch-1"

ORDERS = [
    {"id": "o1", "sku": "book", "card": "4242"},
    {"id": "o2", "sku": "lamp", "card": "0000"},  # this card is declined
    {"id": "o3", "sku": "desk", "card": "4242"},
]


@perdure.activity(name="ReserveStock")
async def reserve_stock(ctx: ActivityContext, sku: str) -> str:
    return f"res-{sku}"


@perdure.activity(name="ReleaseStock")
async def release_stock(ctx: ActivityContext, reservation: str) -> None:
    """The compensation of ReserveStock."""


@perdure.activity(name="ChargeCard")
async def charge_card(ctx: ActivityContext, card: str) -> str:
    if card == "0000":
        raise ValueError("card declined")
    return f"paid-{card}"


@perdure.activity(name="Ship")
async def ship(ctx: ActivityContext, order_id: str) -> str:
    return f"tracking-{order_id}"


@perdure.orchestration(name="ShipOrder")
async def ship_order(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    """Child: reserve, charge (compensating on failure), ship."""
    reservation = await ctx.schedule_activity(reserve_stock, order["sku"])
    try:
        await ctx.schedule_activity(charge_card, order["card"])
    except perdure.ActivityFailed:
        await ctx.schedule_activity(release_stock, reservation)
        raise  # the child fails; the parent decides what to do
    return await ctx.schedule_activity(ship, order["id"])


@perdure.orchestration(name="ShipOrders")
async def ship_orders(
    ctx: OrchestrationContext, orders: list[dict[str, Any]]
) -> dict[str, Any]:
    """Parent: one child per order, in parallel; report shipped and failed."""
    children = [
        ctx.schedule_sub_orchestration(
            ship_order, order, instance_id=f"{ctx.instance_id}:{order['id']}"
        )
        for order in orders
    ]
    results = await ctx.join(children, return_exceptions=True)
    shipped, failed = {}, {}
    for order, result in zip(orders, results, strict=True):
        if isinstance(result, perdure.SubOrchestrationFailed):
            failed[order["id"]] = result.error.message
        else:
            shipped[order["id"]] = result
    return {"shipped": shipped, "failed": failed}


async def run(db_url: str, **options: Any) -> dict[str, Any]:
    """Run one ShipOrders instance on *db_url*; return its output.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url,
        orchestrations=[ship_orders, ship_order],
        activities=[reserve_stock, release_stock, charge_card, ship],
        **options,
    ) as rt:
        await rt.client.start_orchestration(INSTANCE, ship_orders, ORDERS)
        state = await rt.client.wait_for_orchestration(INSTANCE, timeout=30)
    if state.status != "Completed":
        raise RuntimeError(f"{INSTANCE} ended {state.status}: {state.error}")
    return state.output


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = asyncio.run(run(f"sqlite:///{tmp}/shipping.db"))
    for order_id, tracking in report["shipped"].items():
        print(f"{order_id}: shipped ({tracking})")
    for order_id, reason in report["failed"].items():
        print(f"{order_id}: failed ({reason})")


if __name__ == "__main__":
    main()
