"""New code `perdure check` is tested with (v2): not safe to deploy.

``Order`` 1.0.0 now charges before it reserves, so an instance that
already reserved and charged no longer replays. The 0.9.0 version and
``Report`` are gone from this code: their instances are skipped.
"""

from __future__ import annotations

from check_app_v1 import charge, reserve, ship

import perdure
from perdure import OrchestrationContext


@perdure.orchestration(name="Order")  # version 1.0.0, changed in place
async def order(ctx: OrchestrationContext, order: str) -> list[str]:
    await ctx.schedule_wait("go")
    done = [
        await ctx.schedule_activity(charge, order),
        await ctx.schedule_activity(reserve, order),
    ]
    await ctx.schedule_wait("ship")
    done.append(await ctx.schedule_activity(ship, order))
    return done


@perdure.orchestration(name="Order", version="2.0.0")
async def order_2(ctx: OrchestrationContext, order: str) -> list[str]:
    return [await ctx.schedule_activity(ship, order)]


HANDLERS = {"orchestrations": [order, order_2], "activities": [charge, reserve, ship]}
