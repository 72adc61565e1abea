"""Conformance: occurrence order of an instance's due messages (DESIGN §7).

A message occurs when it first becomes visible: at enqueue, or at its
``visible_at`` (a timer's fire time). A fetch returns an instance's due
messages in that order, ties in arrival order, and a backoff that delays
``visible_at`` does not change it.
"""

from __future__ import annotations

import asyncio
import json
import time

from perdure.providers import OrchestrationItem, Outbound, Provider
from perdure.providers.conformance._fixtures import Kit, Run

__all__ = [
    "test_backoff_keeps_occurrence_order",
    "test_clock_is_close_to_this_machine",
    "test_due_messages_come_in_occurrence_order_not_arrival",
    "test_messages_from_turns_and_activities_carry_their_occurrence",
    "test_ties_keep_arrival_order",
]


def _labels(item: OrchestrationItem) -> list[str]:
    return [json.loads(m.body) for m in item.messages]


def test_due_messages_come_in_occurrence_order_not_arrival(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        item = await kit.started(p, "a")
        now = p.clock()
        # Written first, but due (so occurring) later than the event below:
        # a timer set for t+0.15 s, then an event raised at t+0.05 s.
        timer = kit.message("timer_fired", "timer", visible_at=now + 0.15)
        early = kit.message("timer_fired", "early-timer", visible_at=now + 0.02)
        await p.enqueue("a", timer)
        await p.enqueue("a", early)
        await asyncio.sleep(0.05)
        await p.enqueue("a", kit.message("event_raised", "event"))
        await asyncio.sleep(0.15)
        item = await kit.fetch_one(p, "a")
        assert _labels(item) == ["early-timer", "event", "timer"]
        occurred = [m.occurred_at or 0.0 for m in item.messages]
        assert all(m.occurred_at is not None for m in item.messages)
        assert occurred == sorted(occurred)
        assert abs(occurred[0] - (now + 0.02)) < 1e-6
        assert abs(occurred[2] - (now + 0.15)) < 1e-6

    run(body)


def test_ties_keep_arrival_order(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await kit.started(p, "a")
        at = p.clock() - 1.0
        for label in ("first", "second", "third"):
            await p.enqueue("a", kit.message("timer_fired", label, visible_at=at))
        item = await kit.fetch_one(p, "a")
        assert _labels(item) == ["first", "second", "third"]

    run(body)


def test_backoff_keeps_occurrence_order(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await kit.started(p, "a")
        now = p.clock()
        await p.enqueue("a", kit.message("timer_fired", "late", visible_at=now + 0.1))
        await p.enqueue("a", kit.message("event_raised", "early"))
        item = await kit.fetch_one(p, "a")
        assert _labels(item) == ["early"]
        # The turn failed: its messages come back after a backoff that moves
        # their visible_at past the timer's; they still occurred first.
        await p.abandon_orchestration("a", item.lock_token, delay=0.2)
        await asyncio.sleep(0.3)
        item = await kit.fetch_one(p, "a")
        assert _labels(item) == ["early", "late"]

    run(body)


def test_messages_from_turns_and_activities_carry_their_occurrence(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await kit.started(p, "a")
        await kit.started(p, "b")
        # b's turn sends a to-be-due message and a message due now to a.
        await p.enqueue("b", kit.message("event_raised", "go"))
        item = await kit.fetch_one(p, "b")
        later = p.clock() + 0.1
        turn = kit.turn(
            item,
            "sent",
            outbound=[
                Outbound(
                    instance_id="a",
                    message=kit.message("timer_fired", "due-later", visible_at=later),
                ),
                Outbound(instance_id="a", message=kit.message("sub_completed", "now")),
            ],
        )
        assert await p.commit_turns([turn]) == [True]
        await asyncio.sleep(0.15)
        got = await kit.fetch_one(p, "a")
        assert _labels(got) == ["now", "due-later"]
        assert got.messages[1].occurred_at == later

    run(body)


def test_clock_is_close_to_this_machine(run: Run) -> None:
    async def body(p: Provider) -> None:
        # The database server runs on this machine in the tests, so its
        # clock and ours agree; on SQLite clock() is this machine's time.
        assert abs(p.clock() - time.time()) < 1.0

    run(body)
