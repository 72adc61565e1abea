"""Golden programs for shield, timeout, as_completed and task groups (§8).

FROZEN FIXTURES, like ``_programs.py`` (which re-exports them): never edit
a program once a history was recorded from it; add a new one instead.
"""

from __future__ import annotations

from typing import Any

import perdure
from perdure import Cancelled, OrchestrationContext

__all__ = [
    "refused_cleanup",
    "saga_under_deadline",
    "shielded_audit",
    "structured_as_completed",
    "structured_task_group",
]

_STEPS = (("Reserve", "Release"), ("Charge", "Refund"), ("Ship", "Recall"))


@perdure.orchestration(name="SagaUnderDeadline")
async def saga_under_deadline(ctx: OrchestrationContext, order: str) -> str:
    """Reserve, charge, ship within 60 s; on timeout or failure, undo in
    reverse order inside a shield."""

    async def book() -> str:
        undo: list[str] = []
        try:
            for step, back in _STEPS:
                await ctx.schedule_activity(step, order)
                undo.append(back)
            return "booked"
        except (Cancelled, perdure.ActivityFailed):
            async with ctx.shield():
                for back in reversed(undo):
                    await ctx.schedule_activity(back, order)
            raise

    try:
        return await ctx.timeout(60, book())
    except TimeoutError:
        return "timed out, undone"
    except perdure.ActivityFailed as exc:
        return f"failed at {exc.name}, undone"


@perdure.orchestration(name="ShieldedAudit")
async def shielded_audit(ctx: OrchestrationContext, order: str) -> str:
    """Returns at once, leaving a shielded audit activity running: the
    execution completes only once it has."""
    async with ctx.shield():
        ctx.schedule_activity("Audit", order)
    ctx.schedule_activity("Optional", order)
    return "returned"


@perdure.orchestration(name="RefusedCleanup")
async def refused_cleanup(ctx: OrchestrationContext, order: str) -> list[str]:
    """A select loser's except block schedules outside a shield (refused,
    Cancelled) and inside one (runs)."""
    seen: list[str] = []

    async def loser() -> None:
        try:
            await ctx.schedule_activity("Slow", order)
        except Cancelled:
            try:
                ctx.schedule_activity("Unshielded", order)
            except Cancelled:
                seen.append("refused")
            await ctx.shield(ctx_cleanup(ctx, order))
            raise

    await ctx.select(
        ctx.schedule_activity("Fast", order), perdure.durable_async(ctx, loser())
    )
    return seen


async def ctx_cleanup(ctx: OrchestrationContext, order: str) -> Any:
    return await ctx.schedule_activity("Cleanup", order)


@perdure.orchestration(name="StructuredAsCompleted")
async def structured_as_completed(ctx: OrchestrationContext, n: int) -> list[Any]:
    """Three activities collected in completion order, failures as text."""
    futures = [ctx.schedule_activity(f"Job{i}", i) for i in range(n)]
    out: list[Any] = []
    async for future in ctx.as_completed(*futures):
        try:
            out.append(await future)
        except perdure.ActivityFailed as exc:
            out.append(f"failed {exc.name}")
    return out


@perdure.orchestration(name="StructuredTaskGroup")
async def structured_task_group(ctx: OrchestrationContext, order: str) -> str:
    """Three tasks in a group: two wait on one shared check that fails
    (an ExceptionGroup), the third is cancelled."""
    check = ctx.schedule_activity("Check", order)

    async def needs_check(step: str) -> Any:
        await check
        return await ctx.schedule_activity(step, order)

    try:
        async with ctx.task_group() as tg:
            tg.start(needs_check("A"))
            tg.start(needs_check("B"))
            tg.start(ctx.schedule_activity("Slow", order))
    except ExceptionGroup as group:
        return f"{len(group.exceptions)} failed together"
    except perdure.ActivityFailed as exc:
        return f"{exc.name} failed"
    return "all done"
