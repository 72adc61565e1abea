"""Overall timeout around a polling loop, with cleanup (proposal Example 2).

Provisioning creates a VM, polls its status with a durable timer between
polls, then installs packages. The whole block is a ``durable_async`` task
raced against one overall timeout timer: ordinary loops, ``if`` and
``break`` work inside it because it is just a coroutine.

If the timeout wins, whatever the block is doing at that moment - sleeping
on its poll timer or waiting for a CheckVMStatus call - is cancelled, and the
block stops at that await. Here the cleanup runs outside the block: the
block records what it created in a plain dict and the orchestration deletes
the VM after the race. The dict is rebuilt identically on replay, like every
other orchestration variable. (Cleanup inside the cancelled block would have
to go in ``async with ctx.shield():``, see saga.py.)

Two instances: a VM that boots quickly, and one that never becomes ready.

Run it: ``python examples/timeout_with_polling.py``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

READY = "provision-ok"
STUCK = "provision-stuck"

_boot_done_at: dict[str, float] = {}  # the fake cloud's state


@perdure.activity(name="CreateVM")
async def create_vm(ctx: ActivityContext, config: dict[str, Any]) -> str:
    vm_id = f"vm-{uuid.uuid4().hex[:8]}"  # activities may be nondeterministic
    _boot_done_at[vm_id] = time.monotonic() + config["boot_seconds"]
    return vm_id


@perdure.activity(name="CheckVMStatus")
async def check_vm_status(ctx: ActivityContext, vm_id: str) -> str:
    return "ready" if time.monotonic() >= _boot_done_at[vm_id] else "booting"


@perdure.activity(name="InstallPackage")
async def install_package(ctx: ActivityContext, target: str) -> None:
    """Would ssh into the VM; ``target`` is ``"vm_id:package"``."""


@perdure.activity(name="DeleteVM")
async def delete_vm(ctx: ActivityContext, vm_id: str) -> None:
    _boot_done_at.pop(vm_id, None)


async def provision(
    ctx: OrchestrationContext, config: dict[str, Any], created: dict[str, str]
) -> str:
    vm_id = await ctx.schedule_activity(create_vm, config)
    created["vm"] = vm_id
    while await ctx.schedule_activity(check_vm_status, vm_id) != "ready":
        await ctx.schedule_timer(config["poll_seconds"])
    for package in ("nginx", "postgres", "redis"):
        await ctx.schedule_activity(install_package, f"{vm_id}:{package}")
    return vm_id


@perdure.orchestration(name="Provisioning")
async def provisioning(ctx: OrchestrationContext, config: dict[str, Any]) -> str:
    """Provision a VM within ``config['timeout']`` seconds, or clean up."""
    timeout = ctx.schedule_timer(config["timeout"])
    created: dict[str, str] = {}
    work = durable_async(ctx, provision(ctx, config, created))
    winner, vm_id = await ctx.select2(timeout, work)
    if winner == 1:
        return f"provisioned {vm_id}"
    if "vm" not in created:
        return "provisioning timed out"
    await ctx.schedule_activity(delete_vm, created["vm"])
    return "provisioning timed out; VM deleted"


async def run(db_url: str, **options: Any) -> dict[str, str]:
    """Provision one quick and one stuck VM on *db_url*; return both outputs.

    *options* are passed to `perdure.Runtime`.
    """
    configs = {
        READY: {"boot_seconds": 0.2, "poll_seconds": 0.1, "timeout": 30},
        STUCK: {"boot_seconds": 3600, "poll_seconds": 0.1, "timeout": 0.5},
    }
    async with perdure.Runtime(
        db_url,
        orchestrations=[provisioning],
        activities=[create_vm, check_vm_status, install_package, delete_vm],
        **options,
    ) as rt:
        for instance, config in configs.items():
            await rt.client.start_orchestration(instance, provisioning, config)
        outputs = {}
        for instance in configs:
            state = await rt.client.wait_for_orchestration(instance, timeout=30)
            if state.status != "Completed":
                raise RuntimeError(f"{instance} ended {state.status}: {state.error}")
            outputs[instance] = state.output
    return outputs


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for instance, output in asyncio.run(run(f"sqlite:///{tmp}/vm.db")).items():
            print(f"{instance}: {output}")


if __name__ == "__main__":
    main()
