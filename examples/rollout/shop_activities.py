"""The activities every version of the shop registers.

Adding an activity is always safe: only orchestration code is replayed.
"""

from __future__ import annotations

import perdure
from perdure import ActivityContext


@perdure.activity
def reserve(ctx: ActivityContext, order_id: str) -> str:
    return f"reserved {order_id}"


@perdure.activity
def charge(ctx: ActivityContext, order_id: str) -> str:
    return f"charged {order_id}"


@perdure.activity
def ship(ctx: ActivityContext, order_id: str) -> str:
    return f"shipped {order_id}"


@perdure.activity
def fraud_check(ctx: ActivityContext, order_id: str) -> str:
    """New in v2."""
    return f"checked {order_id}"


ACTIVITIES = [reserve, charge, ship, fraud_check]
