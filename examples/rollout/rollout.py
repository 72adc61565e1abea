"""Roll out a change to an orchestration while instances are in flight.

The shop's ``Order`` reserves stock, waits for an approval, charges and
ships. Version 2 adds a fraud check before anything else. Orders that
started under v1 already reserved without one, so the change must not
apply to them: v2 puts it behind ``ctx.patched("fraud-check")``, and
``perdure check`` (run here as a CI step would run it) proves each deploy
safe against the live database before it happens.

`run` walks the rollout:

1. v1 is deployed; order-1 and order-2 reserve stock and wait for approval.
2. ``perdure check shop_v3`` (the change without the patch): both orders
   would break; exit status 1, so this is not deployed.
3. ``perdure check shop_v2`` (the change behind ``ctx.patched``): exit 0.
4. v2 is deployed. order-3 starts on the new path; order-1 and order-2
   are approved and finish on the old one.
5. ``perdure check shop_v3`` again: only order-3 is still running, and
   replay skips its patch marker, so the patch call can go; v3 is deployed
   and order-3 finishes.

`recover` shows the other way out: v3 deployed too early suspends the v1
order it cannot replay (``Suspended`` keeps everything); deploying v2 and
``Client.resume`` finish it.

Run it: ``python examples/rollout/rollout.py`` (README.md has the same
steps as shell commands).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import shop_v1
import shop_v2
import shop_v3

import perdure

HERE = Path(__file__).resolve().parent


def check(db_url: str, code: str) -> int:
    """Run ``perdure check CODE --db URL`` as a CI step would; show its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "perdure", "check", code, "--db", db_url],
        cwd=HERE,  # where 'perdure check' imports CODE from
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"$ perdure check {code}   # exit status {proc.returncode}")
    for line in (proc.stdout + proc.stderr).splitlines():
        print(f"  {line}")
    return proc.returncode


def deploy(db_url: str, code: ModuleType) -> perdure.Runtime:
    """A runtime hosting one version of the shop."""
    return perdure.Runtime(
        db_url,
        orchestrations=code.ORCHESTRATIONS,
        activities=code.ACTIVITIES,
        poll_interval=0.05,
    )


async def wait_for_approval_step(client: perdure.Client, order_id: str) -> None:
    """Return once *order_id* waits for its approval."""
    while True:
        history = await client.get_history(order_id)
        if any(e.type == "EventWaitStarted" for e in history):
            return
        await asyncio.sleep(0.02)


async def start_order(client: perdure.Client, order_id: str) -> None:
    await client.start_orchestration(order_id, "Order", order_id)
    await wait_for_approval_step(client, order_id)


async def approve(client: perdure.Client, order_id: str) -> list[str]:
    await client.raise_event(order_id, "approve")
    state = await client.wait_for_orchestration(order_id, timeout=30)
    assert state.status == "Completed", state.error
    print(f"  {order_id}: {' -> '.join(state.output)}")
    return list(state.output)


async def run(db_url: str) -> dict[str, Any]:
    """The rollout; returns each check's exit status and each order's steps."""
    checks: dict[str, int] = {}
    steps: dict[str, list[str]] = {}
    print("1. v1 deployed; two orders wait for approval")
    async with deploy(db_url, shop_v1) as rt:
        for order_id in ("order-1", "order-2"):
            await start_order(rt.client, order_id)

    print("2. is v3 (fraud check, no patch) safe to deploy now?")
    checks["v3 before"] = check(db_url, "shop_v3")
    print("3. is v2 (fraud check behind ctx.patched) safe to deploy?")
    checks["v2"] = check(db_url, "shop_v2")

    print("4. v2 deployed: a new order takes the new path, old ones the old")
    async with deploy(db_url, shop_v2) as rt:
        await start_order(rt.client, "order-3")
        for order_id in ("order-1", "order-2"):
            steps[order_id] = await approve(rt.client, order_id)

    print("5. no order from v1 times is left: can the patch call go?")
    checks["v3 after"] = check(db_url, "shop_v3")
    async with deploy(db_url, shop_v3) as rt:
        steps["order-3"] = await approve(rt.client, "order-3")
    return {"checks": checks, "steps": steps}


async def recover(db_url: str) -> dict[str, Any]:
    """Deploying v3 too early suspends a v1 order; v2 and a resume finish it."""
    print("v1 deployed; order-9 waits for approval")
    async with deploy(db_url, shop_v1) as rt:
        await start_order(rt.client, "order-9")
    print("v3 deployed too early: order-9 cannot replay, so it is suspended")
    async with deploy(db_url, shop_v3) as rt:
        await rt.client.raise_event("order-9", "approve")
        while (state := await rt.client.get_status("order-9")) is not None and (
            state.status == "Running"
        ):
            await asyncio.sleep(0.02)
    assert state is not None
    print(f"  order-9: {state.status}: {state.error}")
    checks = {"v3": check(db_url, "shop_v3"), "v2": check(db_url, "shop_v2")}
    print("v2 deployed; order-9 resumed: it finishes on the old path")
    async with deploy(db_url, shop_v2) as rt:
        await rt.client.resume("order-9")
        final = await rt.client.wait_for_orchestration("order-9", timeout=30)
    print(f"  order-9: {final.status}: {' -> '.join(final.output)}")
    return {"suspended": state, "checks": checks, "final": final}


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await run(f"sqlite:///{tmp}/rollout.db")
        print()
        await recover(f"sqlite:///{tmp}/recover.db")


if __name__ == "__main__":
    asyncio.run(main())
