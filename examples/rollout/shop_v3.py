"""Version 3: the patch call removed, the fraud check unconditional.

Safe only once no order that started before v2 is still running: replay
skips the ``PatchApplied`` markers of the orders v2 started, but an order
from v1 times has no fraud check in its history and would no longer
replay. ``perdure check shop_v3`` says which case you are in.
Deployed too early, it is the unsafe change itself.
"""

from __future__ import annotations

from shop_activities import ACTIVITIES, charge, fraud_check, reserve, ship

import perdure
from perdure import OrchestrationContext


@perdure.orchestration(name="Order")
async def order(ctx: OrchestrationContext, order_id: str) -> list[str]:
    steps = [await ctx.schedule_activity(fraud_check, order_id)]
    steps.append(await ctx.schedule_activity(reserve, order_id))
    await ctx.schedule_wait("approve")
    steps.append(await ctx.schedule_activity(charge, order_id))
    steps.append(await ctx.schedule_activity(ship, order_id))
    return steps


ORCHESTRATIONS = [order]
__all__ = ["ACTIVITIES", "ORCHESTRATIONS"]
