"""`history_tree`: the text tree's model as data (no storage, a Simulator)."""

from __future__ import annotations

import perdure
from perdure import Cancelled, OrchestrationContext
from perdure._tree_data import history_tree
from perdure.testing import Simulator


@perdure.orchestration
async def compensating(ctx: OrchestrationContext, inp: str) -> str:
    async def book() -> str:
        try:
            await ctx.schedule_activity("Reserve", inp)
            await ctx.schedule_activity("Ship", inp)
            return "booked"
        except Cancelled:
            async with ctx.shield():
                await ctx.schedule_activity("Release", inp)
            raise

    try:
        return await ctx.timeout(60, book())
    except TimeoutError:
        return "undone"


def test_cancelled_scope_winner_timer_and_shielded_compensation() -> None:
    sim = Simulator(compensating, "o1")
    sim.complete(2, "r")  # Reserve (the timer is event 3)
    sim.fire(3)  # the deadline: Ship (5) is cancelled, Release (7) starts
    sim.complete(7)
    tree = history_tree(sim.history)
    assert tree["orchestration"]["input"] == "o1"
    assert (tree["status"], tree["end"]["output"]) == ("done", "undone")
    task, timer = tree["root"]["items"]
    assert (task["path"], task["status"], task["reason"]) == (
        "0.1",
        "cancelled",
        "timed out",
    )
    reserve, ship, release = task["items"]
    assert (reserve["status"], reserve["result"]) == ("completed", "r")
    assert (ship["status"], ship["reason"]) == ("cancelled", "timed out")
    assert ship["ended_at"] is not None and ship["cancel_event_id"]
    assert release["shielded"] and release["status"] == "completed"
    assert (timer["label"], timer["status"]) == ("timer 60 s", "winner")
    assert [t["event_id"] for t in tree["timeline"]] == [2, 3, 5, 7]


def test_running_execution_has_pending_work_and_no_end() -> None:
    sim = Simulator(compensating, "o2")
    tree = history_tree(sim.history)
    assert (tree["status"], tree["end"], tree["ended_at"]) == ("running", None, None)
    assert tree["root"]["items"][0]["status"] == "running"
    assert all(t["ended_at"] is None for t in tree["timeline"])


def test_empty_history() -> None:
    tree = history_tree([])
    assert tree["orchestration"] is None and tree["root"]["items"] == []
