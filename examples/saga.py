"""A saga under a deadline: undo the finished steps, in reverse, when it fails.

An order goes through three activities - reserve stock, charge the card,
ship - each with an undo activity (release, refund, recall). The whole
booking runs under ``ctx.timeout``. When time runs out, the step in flight is
cancelled and `perdure.Cancelled` is thrown into the booking; when a step
fails, its `perdure.ActivityFailed` arrives the same way. Either way the
booking runs the undo activities of the steps it started, last first, and
re-raises.

The undo runs inside ``async with ctx.shield():``. Without the shield, a
cancelled block may not start durable work: the first undo would raise
`Cancelled` again and nothing would be undone. Inside it, the undo
activities run to the end although the block was cancelled, and
``ctx.timeout`` waits for them before it raises `perdure.DurableTimeout`.
Even `Client.cancel_instance` arriving during the undo lets it finish.

Each undo is listed *before* its step starts: a step cut short may still have
happened (the card charged just before the deadline), so the undo
activities are written to do nothing when there is nothing to undo.

Three orders: one ships in time, one's card is declined, one's courier is
too slow for the deadline.

Run it: ``python examples/saga.py``, or ``python examples/saga.py
sqlite:///saga.db`` to keep the database and look at a history with
``perdure --db saga.db history order-late``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

SHIPPED = "order-shipped"
DECLINED = "order-declined"
LATE = "order-late"

ORDERS: dict[str, dict[str, Any]] = {
    SHIPPED: {"card": "4242", "ship_seconds": 0.05, "deadline": 30},
    DECLINED: {"card": "0000", "ship_seconds": 0.05, "deadline": 30},
    LATE: {"card": "4242", "ship_seconds": 3600, "deadline": 0.5},
}

#: What the fake shop did, one line per effect: ``"<order> reserved"``...
LEDGER: list[str] = []
_state: dict[str, set[str]] = {}  # order id -> what is currently held


def _do(order: dict[str, Any], what: str) -> None:
    _state.setdefault(order["id"], set()).add(what)
    LEDGER.append(f"{order['id']} {what}")


def _undo(order: dict[str, Any], what: str, undone: str, verb: str) -> None:
    """Undo *what* if it happened; idempotent, like every compensation."""
    held = _state.setdefault(order["id"], set())
    LEDGER.append(f"{order['id']} {undone if what in held else 'nothing to ' + verb}")
    held.discard(what)


@perdure.activity(name="Reserve")
async def reserve(ctx: ActivityContext, order: dict[str, Any]) -> None:
    _do(order, "reserved")


@perdure.activity(name="Charge")
async def charge(ctx: ActivityContext, order: dict[str, Any]) -> None:
    if order["card"] == "0000":
        raise perdure.NonRetryableError("card declined")
    _do(order, "charged")


@perdure.activity(name="Ship")
async def ship(ctx: ActivityContext, order: dict[str, Any]) -> None:
    """The courier takes ``ship_seconds``; it stops early when cancelled."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctx.cancelled, order["ship_seconds"])
    if not ctx.is_cancelled():
        _do(order, "shipped")


@perdure.activity(name="Release")
async def release(ctx: ActivityContext, order: dict[str, Any]) -> None:
    _undo(order, "reserved", "released", "release")


@perdure.activity(name="Refund")
async def refund(ctx: ActivityContext, order: dict[str, Any]) -> None:
    _undo(order, "charged", "refunded", "refund")


@perdure.activity(name="Recall")
async def recall(ctx: ActivityContext, order: dict[str, Any]) -> None:
    _undo(order, "shipped", "recalled", "recall")


Step = Callable[[ActivityContext, dict[str, Any]], Awaitable[None]]
#: Each step and its undo, in the order the steps run.
STEPS: list[tuple[Step, Step]] = [(reserve, release), (charge, refund), (ship, recall)]


async def book(ctx: OrchestrationContext, order: dict[str, Any]) -> None:
    """Run the steps; on a timeout or a failed step, undo them in reverse."""
    undo: list[Step] = []
    try:
        for step, compensation in STEPS:
            undo.append(compensation)  # before the step: it may half-happen
            await ctx.schedule_activity(step, order)
    except (perdure.Cancelled, perdure.ActivityFailed):
        async with ctx.shield():  # runs although the block was cancelled
            for compensation in reversed(undo):
                await ctx.schedule_activity(compensation, order)
        raise


@perdure.orchestration(name="OrderSaga")
async def order_saga(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    """Book *order* within ``order['deadline']`` seconds, or undo it."""
    try:
        await ctx.timeout(order["deadline"], book(ctx, order))
    except perdure.DurableTimeout:
        return "timed out; undone"
    except perdure.ActivityFailed as failure:
        return f"{failure.name} failed ({failure.message}); undone"
    return "shipped"


ACTIVITIES = [reserve, charge, ship, release, refund, recall]


async def run(db_url: str, **options: Any) -> dict[str, str]:
    """Run the three orders on *db_url*; return each instance's output.

    *options* are passed to `perdure.Runtime`.
    """
    LEDGER.clear()  # a fresh shop for each run
    _state.clear()
    async with perdure.Runtime(
        db_url, orchestrations=[order_saga], activities=ACTIVITIES, **options
    ) as rt:
        for instance, order in ORDERS.items():
            await rt.client.start_orchestration(
                instance, order_saga, {"id": instance, **order}
            )
        outputs = {}
        for instance in ORDERS:
            state = await rt.client.wait_for_orchestration(instance, timeout=30)
            if state.status != "Completed":
                raise RuntimeError(f"{instance} ended {state.status}: {state.error}")
            outputs[instance] = state.output
    return outputs


def main() -> None:
    if len(sys.argv) > 1:  # a storage URL: the database is kept, to inspect it
        outputs = asyncio.run(run(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            outputs = asyncio.run(run(f"sqlite:///{tmp}/saga.db"))
    for instance, output in outputs.items():
        print(f"{instance}: {output}")
        for line in LEDGER:
            if line.startswith(f"{instance} "):
                print(f"    {line.removeprefix(instance + ' ')}")


if __name__ == "__main__":
    main()
