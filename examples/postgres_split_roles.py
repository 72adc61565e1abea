"""Split roles on PostgreSQL: orchestrators and activity workers apart.

Several runtimes can share one PostgreSQL database. Each may take every role
(the default, ``role="all"``) or only one: ``role="orchestrator"`` runs
orchestration turns and never an activity (it does not even need the activity
code), ``role="worker"`` runs activities only (it needs no orchestration
code). Start as many of each as the load needs, on any machines; they find
their work through the database and wake each other with LISTEN/NOTIFY.

Run it::

    python examples/postgres_split_roles.py [URL]               # the demo
    python examples/postgres_split_roles.py worker [URL]        # one role,
    python examples/postgres_split_roles.py orchestrator [URL]  # until Ctrl-C

URL is a ``postgresql://`` URL (``?schema=NAME`` picks the schema), given
as an argument or in ``PERDURE_DB``. The demo runs an orchestrator runtime,
a worker runtime and a client in this one process, each with its own
database connections, as if they were three processes. Without a PostgreSQL
URL the demo runs the same split on a temporary SQLite file instead (one
machine only: SQLite runtimes in other processes notice work by polling).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

ORDERS = {"order-1": [12.5, 7.5], "order-2": [3.0], "order-3": [10.0, 10.0, 5.0]}


# --- the worker's code ------------------------------------------------------


@perdure.activity(name="ChargeCard")
async def charge_card(ctx: ActivityContext, amount: float) -> str:
    """Charge the customer (a real one would call a payment provider)."""
    await asyncio.sleep(0.01)
    return f"charged {amount:.2f} for {ctx.instance_id}"


@perdure.activity(name="SendReceipt")
def send_receipt(ctx: ActivityContext, charge: str) -> str:
    """Send a receipt (a plain ``def``: runs in the worker's thread pool)."""
    return f"receipt sent ({charge})"


# --- the orchestrator's code ------------------------------------------------


@perdure.orchestration(name="Checkout")
async def checkout(ctx: OrchestrationContext, prices: list[float]) -> str:
    """Charge the total, then send a receipt; activities are named, not imported."""
    charge = await ctx.schedule_activity("ChargeCard", sum(prices))
    return await ctx.schedule_activity("SendReceipt", charge)


def orchestrator(url: str) -> perdure.Runtime:
    """A runtime that only runs orchestration turns."""
    return perdure.Runtime(url, orchestrations=[checkout], role="orchestrator")


def worker(url: str) -> perdure.Runtime:
    """A runtime that only runs activities."""
    return perdure.Runtime(url, activities=[charge_card, send_receipt], role="worker")


async def run(db_url: str) -> dict[str, Any]:
    """Run the checkout orders through split runtimes; return each output."""
    async with orchestrator(db_url), worker(db_url), perdure.Client(db_url) as client:
        for order, prices in ORDERS.items():
            await client.start_orchestration(order, checkout, prices)
        outputs = {}
        for order in ORDERS:
            state = await client.wait_for_orchestration(order, timeout=30)
            if state.status != "Completed":
                raise RuntimeError(f"{order} ended {state.status}: {state.error}")
            outputs[order] = state.output
    return outputs


async def serve(runtime: perdure.Runtime, role: str) -> None:
    """Run one role until SIGINT/SIGTERM (what a deployment would start)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with runtime:
        print(f"{role} runtime running; Ctrl-C to stop", flush=True)
        await stop.wait()


def main() -> None:
    args = sys.argv[1:]
    role = args.pop(0) if args and args[0] in ("worker", "orchestrator") else None
    url = args[0] if args else os.environ.get("PERDURE_DB", "")
    is_postgres = url.startswith(("postgresql://", "postgres://"))
    if role is not None:
        if not is_postgres:
            sys.exit(f"{role}: give a postgresql:// URL (argument or PERDURE_DB)")
        runtime = worker(url) if role == "worker" else orchestrator(url)
        asyncio.run(serve(runtime, role))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if not is_postgres:
            print("No PostgreSQL URL given (argument or PERDURE_DB): running the")
            print("same split on a temporary SQLite file instead.")
            url = f"sqlite:///{tmp}/split.db"
        for order, output in asyncio.run(run(url)).items():
            print(f"{order}: {output}")


if __name__ == "__main__":
    main()
