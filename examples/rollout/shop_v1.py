"""Version 1 of the shop: reserve the stock, wait for approval, charge, ship.

``perdure worker shop_v1`` hosts it.
"""

from __future__ import annotations

from shop_activities import ACTIVITIES, charge, reserve, ship

import perdure
from perdure import OrchestrationContext


@perdure.orchestration(name="Order")
async def order(ctx: OrchestrationContext, order_id: str) -> list[str]:
    steps = [await ctx.schedule_activity(reserve, order_id)]
    await ctx.schedule_wait("approve")
    steps.append(await ctx.schedule_activity(charge, order_id))
    steps.append(await ctx.schedule_activity(ship, order_id))
    return steps


ORCHESTRATIONS = [order]
__all__ = ["ACTIVITIES", "ORCHESTRATIONS"]
