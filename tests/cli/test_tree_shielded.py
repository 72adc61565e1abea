"""Shielded work (``ctx.shield``) in the scope tree of ``perdure history``."""

from __future__ import annotations

import perdure
from perdure import Cancelled, OrchestrationContext
from perdure._tree import render_history
from perdure.testing import Simulator


@perdure.orchestration
async def compensating(ctx: OrchestrationContext, inp: str) -> str:
    async def book() -> str:
        undo: list[str] = []
        try:
            for step, back in (("Reserve", "Release"), ("Charge", "Refund")):
                await ctx.schedule_activity(step, inp)
                undo.append(back)
            await ctx.schedule_activity("Ship", inp)
            return "booked"
        except Cancelled:
            async with ctx.shield():
                for back in reversed(undo):
                    await ctx.schedule_activity(back, inp)
            raise

    try:
        return await ctx.timeout(60, book())
    except TimeoutError:
        return "undone"


def test_compensation_is_shown_shielded_under_its_cancelled_scope() -> None:
    sim = Simulator(compensating, "o1")
    sim.complete(2, "r")  # Reserve (the timer is event 3)
    sim.complete(5, "c")  # Charge
    sim.fire(3)  # the deadline: Ship (7) is cancelled, Refund (9) starts
    sim.complete(9)
    sim.complete(12)  # Release; then the timeout raises
    assert render_history(sim.history, ascii=True) == (
        'orchestration compensating 1.0.0  input "o1"\n'
        "scope 0  OK done\n"
        "|-- task 0.1  X cancelled: timed out\n"
        '|   |-- #2 activity Reserve("o1")  OK -> "r" (#4)\n'
        '|   |-- #5 activity Charge("o1")  OK -> "c" (#6)\n'
        '|   |-- #7 activity Ship("o1")  X cancelled: timed out (#10)\n'
        '|   |-- #9 activity Refund("o1") [shielded]  OK -> null (#11)\n'
        '|   `-- #12 activity Release("o1") [shielded]  OK -> null (#13)\n'
        "`-- #3 timer 60 s  OK winner, fired (#8)\n"
        '#14 OK completed -> "undone"\n'
    )


def test_unshielded_work_is_not_marked() -> None:
    sim = Simulator(compensating, "o2")
    sim.complete(2, "r")
    assert "[shielded]" not in render_history(sim.history)
