"""A task started by ``await ctx.shield(coro)`` in the ``perdure history`` tree."""

from __future__ import annotations

import perdure
from perdure import OrchestrationContext
from perdure._tree import render_history
from perdure.testing import Simulator


@perdure.orchestration
async def undo_in_a_shielded_task(ctx: OrchestrationContext, _: None) -> list[str]:
    seen: list[str] = []

    async def undo() -> str:
        await ctx.schedule_activity("Refund")
        return "undone"

    async def book() -> None:
        try:
            await ctx.schedule_activity("Ship")
        except perdure.Cancelled:
            seen.append(await ctx.shield(undo()))  # task 0.1.1, shielded
            raise

    try:
        await ctx.timeout(60, book())
    except TimeoutError:
        seen.append("timeout")
    return seen


def test_a_shielded_task_is_not_shown_cancelled() -> None:
    sim = Simulator(undo_in_a_shielded_task)
    sim.fire(3)  # the deadline: Ship (2) is cancelled, Refund (5) starts
    sim.complete(5)
    assert sim.result.output == ["undone", "timeout"]  # the engine is right
    tree = render_history(sim.history, ascii=True)
    (line,) = [x for x in tree.splitlines() if "task 0.1.1" in x]
    assert "cancelled" not in line, tree
    assert line.endswith("task 0.1.1 [shielded]  OK done"), tree
