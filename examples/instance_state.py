"""Instance values: an order workflow that exposes its progress.

The orchestration records where it is with ``ctx.set_value``: the current
step, how many items are packed out of how many, and the tracking number
once shipped. Each call is recorded in the history (replay checks it) and
the values are stored on the instance in the same commit as the turn that
set them, so ``client.get_values`` reads them at any time, without running
the orchestration: here a dashboard polls them while the order waits for a
warehouse's go-ahead, and reads them again once the order is done.

Run it: ``python examples/instance_state.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

ORDER = "order-77"


@perdure.activity(name="PackItem")
async def pack_item(ctx: ActivityContext, item: str) -> str:
    """Would ask the warehouse robot to pack *item*."""
    return f"packed {item}"


@perdure.activity(name="Ship")
async def ship(ctx: ActivityContext, order_id: str) -> str:
    """Would book the carrier; returns the tracking number."""
    return f"TRK-{order_id}"


@perdure.orchestration(name="Fulfil")
async def fulfil(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    """Pack every item, wait for the warehouse, ship."""
    items = order["items"]
    ctx.set_value("step", "packing")
    ctx.set_value("packed", {"done": 0, "of": len(items)})
    for done, item in enumerate(items, start=1):
        await ctx.schedule_activity(pack_item, item)
        ctx.set_value("packed", {"done": done, "of": len(items)})
    ctx.set_value("step", "waiting for the warehouse")
    await ctx.schedule_wait("go")
    ctx.set_value("step", "shipping")
    tracking = await ctx.schedule_activity(ship, order["id"])
    ctx.set_value("tracking", tracking)
    ctx.set_value("step", "shipped")
    return tracking


async def run(db_url: str, **options: Any) -> dict[str, Any]:
    """Run one order on *db_url*; return the values seen while and after.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url, orchestrations=[fulfil], activities=[pack_item, ship], **options
    ) as rt:
        client = rt.client
        order = {"id": "77", "items": ["book", "lamp", "mug"]}
        await client.start_orchestration(ORDER, fulfil, order)
        # A dashboard polls the values; they change as turns commit.
        while True:
            waiting = await client.get_values(ORDER)
            if waiting.get("step") == "waiting for the warehouse":
                break
            await asyncio.sleep(0.02)
        await client.raise_event(ORDER, "go")
        state = await client.wait_for_orchestration(ORDER, timeout=30)
        if state.status != "Completed":
            raise RuntimeError(f"{ORDER} ended {state.status}: {state.error}")
        # Still readable after the instance has completed.
        done = await client.get_values(ORDER)
    return {"waiting": waiting, "done": done, "output": state.output}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seen = asyncio.run(run(f"sqlite:///{tmp}/orders.db"))
    print(f"while waiting: {seen['waiting']}")
    print(f"when done:     {seen['done']}")
    print(f"output:        {seen['output']}")


if __name__ == "__main__":
    main()
