"""``perdure demo``: the sample order workflow, a crash, and a resume.

The workflow (DESIGN §1) races a slow quick check against a multi-step
validation block made with `durable_async`. The demo starts a worker
process on a SQLite file, kills it with SIGKILL as soon as the first
validation step is in the history, resumes in this process with a new
`Runtime`, and prints the history as a tree of task scopes. The quick check
is slower than the whole validation block, so the story is always the same:
the block wins and the quick check is cancelled.

This module is also the worker's handler module
(``python -m perdure worker perdure._demo``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._activity import ActivityContext
from ._cli_commands import use_ascii
from ._cli_worker import CliError
from ._client import Client
from ._context import OrchestrationContext, durable_async
from ._core._history import ActivityCompleted, ActivityScheduled
from ._registry import activity, orchestration
from ._runtime import Runtime
from ._tree import render_history

__all__ = ["ACTIVITIES", "ORCHESTRATIONS", "run_demo"]

ORDER_ID = "order-1001"
ORDER = {"id": ORDER_ID, "customer": "ada", "items": ["book", "lamp"]}
# Each validation step takes STEP_SECONDS; the quick check takes far longer
# than the whole block even after the crash, so the block always wins.
STEP_SECONDS = 0.3
QUICK_CHECK_SECONDS = 4.0
LOCK_TIMEOUT = 1.0


def _say(text: str) -> None:
    print(f"   [pid {os.getpid()}] {text}", flush=True)


@activity(name="QuickCheck")
async def quick_check(ctx: ActivityContext, order_id: str) -> str:
    """Ask a (slow) fraud-score service; stops early when cancelled."""
    _say(f"QuickCheck({order_id}) started: waiting for the fraud-score service")
    try:
        await asyncio.wait_for(ctx.cancelled, QUICK_CHECK_SECONDS)
    except TimeoutError:
        return "low risk"
    _say("QuickCheck cancelled: it lost the race")
    return "cancelled"


@activity(name="ValidateCustomer")
def validate_customer(ctx: ActivityContext, customer: str) -> str:
    """Check the customer record (a sync activity: runs in a thread)."""
    _say(f"ValidateCustomer({customer}) running")
    time.sleep(STEP_SECONDS)
    return f"{customer} verified"


@activity(name="CreditCheck")
async def credit_check(ctx: ActivityContext, customer: str) -> str:
    """Check the customer's credit."""
    _say(f"CreditCheck({customer}) running")
    await asyncio.sleep(STEP_SECONDS)
    return "credit ok"


@activity(name="ReserveStock")
async def reserve_stock(ctx: ActivityContext, item: str) -> str:
    """Reserve one item."""
    _say(f"ReserveStock({item}) running")
    await asyncio.sleep(STEP_SECONDS)
    return f"{item} reserved"


@activity(name="ConfirmOrder")
async def confirm_order(ctx: ActivityContext, order_id: str) -> str:
    """Confirm the order to the customer."""
    _say(f"ConfirmOrder({order_id}) running")
    await asyncio.sleep(STEP_SECONDS / 3)
    return f"confirmation C-{order_id}"


async def _reserve_all(ctx: OrchestrationContext, items: list[str]) -> list[str]:
    return [await ctx.schedule_activity(reserve_stock, item) for item in items]


async def _validate(ctx: OrchestrationContext, order: dict[str, Any]) -> dict[str, Any]:
    customer = await ctx.schedule_activity(validate_customer, order["customer"])
    credit, stock = await ctx.join(
        ctx.schedule_activity(credit_check, customer),
        durable_async(ctx, _reserve_all(ctx, order["items"])),
    )
    return {"customer": customer, "credit": credit, "stock": stock}


@orchestration(name="Order")
async def order_workflow(ctx: OrchestrationContext, order: dict[str, Any]) -> Any:
    """Race the quick check against full validation, then confirm."""
    quick = ctx.schedule_activity(quick_check, order["id"])
    full = durable_async(ctx, _validate(ctx, order))
    won = await ctx.select2(quick, full)
    if won[0] == 0:  # narrows won[1] to the quick check's result
        return {"order": order["id"], "approved_by": "quick check", "risk": won[1]}
    result = won[1]
    confirmation = await ctx.schedule_activity(confirm_order, order["id"])
    return {
        "order": order["id"],
        "approved_by": "full validation",
        **result,
        "confirmation": confirmation,
    }


ORCHESTRATIONS = [order_workflow]
ACTIVITIES = [
    quick_check,
    validate_customer,
    credit_check,
    reserve_stock,
    confirm_order,
]


def run_demo(db: str | None = None) -> int:
    """Run the demo on SQLite file *db* (a fresh temporary file by default).

    Returns:
        0 when the order completed after the resume, 1 otherwise.
    """
    if db is None:
        path = Path(tempfile.mkdtemp(prefix="perdure-demo-")) / "perdure-demo.db"
    else:
        path = Path(db.removeprefix("sqlite:///")).expanduser()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return asyncio.run(_demo(path.resolve()))


def _tree(events: list[Any]) -> str:
    text = render_history(events, ascii=use_ascii())
    return "".join(f"     {line}\n" for line in text.splitlines())


async def _step_done(
    client: Client, proc: asyncio.subprocess.Process, name: str, timeout: float
) -> list[Any]:
    """Poll the history until activity *name* has completed; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise CliError(
                f"the worker process exited early (status {proc.returncode})"
            )
        events = await client.get_history(ORDER_ID)
        ids = {
            e.event_id
            for e in events
            if isinstance(e, ActivityScheduled) and e.name == name
        }
        if any(
            isinstance(e, ActivityCompleted) and e.source_event_id in ids
            for e in events
        ):
            return events
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the worker did not complete {name} within {timeout} s")


async def _demo(path: Path) -> int:
    url = f"sqlite:///{path}"
    began = time.monotonic()
    print("perdure demo: an order workflow that survives a crash")
    print(f"storage: {url}\n")
    async with Client(url) as client:
        await client.start_orchestration(ORDER_ID, order_workflow, ORDER)
        print(f"1. started {ORDER_ID}: QuickCheck races a validation block")
        print("   (ValidateCustomer, then CreditCheck alongside ReserveStock per item)")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "perdure", "worker", "perdure._demo",
            "--db", url, "--lock-timeout", str(LOCK_TIMEOUT), "--poll-interval", "0.05",
        )  # fmt: skip
        print(f"   worker process started (pid {proc.pid})", flush=True)
        try:
            await _step_done(client, proc, "ValidateCustomer", timeout=30.0)
        finally:
            proc.kill()  # SIGKILL: no cleanup, no goodbye
            await proc.wait()
        state = await client.get_status(ORDER_ID)
        events = await client.get_history(ORDER_ID)
        status = state.status if state is not None else "missing"
        print(
            f"\n2. ValidateCustomer completed -> SIGKILL sent to the worker (pid "
            f"{proc.pid}).\n   Worker killed (exit status {proc.returncode}); "
            f"{ORDER_ID} is {status} with {len(events)} events:"
        )
        print(_tree(events), end="")
    print(
        f"\n3. resuming with a new Runtime in this process (pid {os.getpid()}); it "
        f"takes over once the dead worker's {LOCK_TIMEOUT:g} s leases expire",
        flush=True,
    )
    async with Runtime(
        url,
        orchestrations=ORCHESTRATIONS,
        activities=ACTIVITIES,
        lock_timeout=LOCK_TIMEOUT,
        poll_interval=0.05,
        cancellation_grace_period=1.0,
    ) as runtime:
        final = await runtime.client.wait_for_orchestration(ORDER_ID, timeout=60.0)
        events = await runtime.client.get_history(ORDER_ID)
    print(f"\n4. {ORDER_ID} {final.status} after {time.monotonic() - began:.1f} s.")
    print("   Steps completed before the crash were not run again; the ones in")
    print("   flight were (activities run at least once). History as task scopes:")
    print(_tree(events), end="")
    output = json.dumps(final.output, ensure_ascii=False, indent=2)
    print("\noutput: " + output.replace("\n", "\n        "))
    if final.error is not None:
        print(f"error: {final.error}")
    print(f"\nlook again: perdure --db {url} history {ORDER_ID}")
    return 0 if final.status == "Completed" else 1
