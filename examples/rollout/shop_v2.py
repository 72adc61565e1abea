"""Version 2: a fraud check before anything else, behind ``ctx.patched``.

One function serves both kinds of instance. An order that started under
v1 already reserved its stock without a fraud check: replaying its history,
``ctx.patched("fraud-check")`` is False and it goes on down the old path.
A new order gets True (a ``PatchApplied`` marker records that) and is
checked first.
"""

from __future__ import annotations

from shop_activities import ACTIVITIES, charge, fraud_check, reserve, ship

import perdure
from perdure import OrchestrationContext


@perdure.orchestration(name="Order")
async def order(ctx: OrchestrationContext, order_id: str) -> list[str]:
    steps = []
    if ctx.patched("fraud-check"):
        steps.append(await ctx.schedule_activity(fraud_check, order_id))
    steps.append(await ctx.schedule_activity(reserve, order_id))
    await ctx.schedule_wait("approve")
    steps.append(await ctx.schedule_activity(charge, order_id))
    steps.append(await ctx.schedule_activity(ship, order_id))
    return steps


ORCHESTRATIONS = [order]
__all__ = ["ACTIVITIES", "ORCHESTRATIONS"]
