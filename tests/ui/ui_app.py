"""Orchestrations the web UI tests show: a waiter, a failure, a nested race.

The nested race is the proposal's Example 5, ``examples/nested_durable_async``
(``durable_async`` blocks racing; the inner block loses and is cancelled).
"""

from __future__ import annotations

from typing import Any

from ui_support import BackgroundRuntime, load_example

import perdure
from perdure import ActivityContext, Cancelled, OrchestrationContext

nested = load_example("nested_durable_async")

#: An instance id that would run script if anything rendered it as HTML.
XSS_ID = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@perdure.activity(name="Explode")
async def explode(ctx: ActivityContext, what: str) -> str:
    raise ValueError(f"cannot {what}")


@perdure.activity(name="Undo")
async def undo(ctx: ActivityContext, what: str) -> str:
    return f"undid {what}"


@perdure.orchestration(name="Waiter")
async def waiter(ctx: OrchestrationContext, order: Any) -> Any:
    """Wait for event ``go``; compensate (shielded) when cancelled."""
    try:
        return await ctx.schedule_wait("go")
    except Cancelled:
        async with ctx.shield():
            await ctx.schedule_activity(undo, str(order))
        raise


@perdure.orchestration(name="Exploder")
async def exploder(ctx: OrchestrationContext, what: str) -> str:
    """Fail with an activity's error (and its stack)."""
    return await ctx.schedule_activity(explode, what)


ORCHESTRATIONS = [waiter, exploder, nested.nested_scopes]
ACTIVITIES = [
    explode,
    undo,
    nested.setup,
    nested.inner_a1,
    nested.inner_a2,
    nested.inner_b,
    nested.finalize,
]


def start_nested(rt: BackgroundRuntime, instance_id: str = nested.FAST) -> None:
    """Run the nested race to completion (InnerB wins, InnerA1 is cancelled)."""
    job = {"name": "fast-job", "timeout": 60}
    rt.run(rt.client.start_orchestration(instance_id, nested.nested_scopes, job))
    state = rt.run(rt.client.wait_for_orchestration(instance_id, timeout=15))
    assert state.status == "Completed", state


def start_failed(rt: BackgroundRuntime, instance_id: str) -> None:
    """An Exploder instance, run until it fails."""
    rt.run(rt.client.start_orchestration(instance_id, exploder, "fly"))
    state = rt.run(rt.client.wait_for_orchestration(instance_id, timeout=15))
    assert state.status == "Failed", state


def start_waiters(rt: BackgroundRuntime, *instance_ids: str) -> None:
    """Waiter instances, each running (waiting for ``go``) when this returns."""
    for instance_id in instance_ids:
        rt.run(rt.client.start_orchestration(instance_id, waiter, instance_id))
    for instance_id in instance_ids:
        rt.run(_until_waiting(rt, instance_id))


async def _until_waiting(rt: BackgroundRuntime, instance_id: str) -> None:
    import asyncio

    for _ in range(400):
        history = await rt.client.get_history(instance_id)
        if any(type(e).__name__ == "EventWaitStarted" for e in history):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{instance_id} never waited")
