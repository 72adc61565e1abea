"""Fused acknowledgements: a result and the turn it wakes in one commit (issue 17).

When the instance's driver is cached in the runtime that ran the activity,
the result is never stored as a message: the turn it wakes commits without
the instance's lock, acknowledging the item (`perdure._fused`). Each result
goes exactly one way, the outcome and the history are those of the usual
path, and anything that came first (a due message, a lock held elsewhere)
sends the result the usual way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from _helpers import WAIT, reached, runtime

import perdure
from perdure import OrchestrationContext, events as h
from perdure.providers import ActivityResult, Provider, TurnCommit, open_provider
from perdure.testing import replay


@perdure.activity(name="Inc")
def inc(_: perdure.ActivityContext, x: int) -> int:
    return x + 1


@perdure.orchestration(name="Steps")
async def steps(ctx: OrchestrationContext, n: int) -> int:
    x = 0
    for _ in range(n):
        x = await ctx.schedule_activity(inc, x)
    return x


release = threading.Event()


@perdure.activity(name="Gate")
def gate(_: perdure.ActivityContext) -> str:
    release.wait(WAIT)
    return "work"


@perdure.orchestration(name="EventOrGate")
async def event_or_gate(ctx: OrchestrationContext) -> list[Any]:
    index, value = await ctx.select2(
        ctx.schedule_activity(gate), ctx.schedule_wait("e")
    )
    return [index, value]


class Counting:
    """Counts how results were written: fused into a turn, or as messages."""

    def __init__(self, provider: Provider) -> None:
        self.fused = 0
        self.rejected = 0
        self.completed = 0
        commit, complete = provider.commit_turns, provider.complete_activities

        async def commit_turns(turns: Sequence[TurnCommit]) -> list[bool]:
            oks = await commit(turns)
            for turn, ok in zip(turns, oks, strict=True):
                if turn.acks:
                    if ok:
                        self.fused += len(turn.acks)
                    else:
                        self.rejected += len(turn.acks)
            return oks

        async def complete_activities(results: Sequence[ActivityResult]) -> None:
            self.completed += len(results)
            await complete(results)

        # Wraps the verbs on this one object.
        provider.commit_turns = commit_turns  # type: ignore[method-assign]
        provider.complete_activities = complete_activities  # type: ignore[method-assign]


async def test_sequential_steps_commit_with_their_results(storage_url: str) -> None:
    provider = open_provider(storage_url)
    counting = Counting(provider)
    n = 20
    async with runtime(provider, [steps], [inc]) as rt:
        await rt.client.start_orchestration("s", steps, n)
        state = await rt.client.wait_for_orchestration("s", timeout=WAIT)
        history = await rt.client.get_history("s")
    await provider.close()
    assert (state.status, state.output) == ("Completed", n)
    # Every result was written exactly once, one way or the other, and the
    # driver stays cached between steps, so most went the fused way.
    assert counting.fused + counting.completed - counting.rejected == n
    assert counting.fused > n // 2, vars(counting)
    # The history is the usual one: it replays to the same outcome.
    again = replay(steps, history, activities=[inc])
    assert (again.status, again.output) == ("Completed", n)
    kinds = [type(e) for e in history]
    assert kinds.count(h.ActivityCompleted) == n


async def test_a_message_that_came_first_is_delivered_first(storage_url: str) -> None:
    release.clear()
    provider = open_provider(storage_url)
    counting = Counting(provider)
    async with runtime(provider, [event_or_gate], [gate]) as rt:
        client = rt.client
        await client.start_orchestration("g", event_or_gate)
        await reached(client, "g", h.EventWaitStarted)
        await client.raise_event("g", "e", "event")
        # The event is stored (due) before the activity returns: the
        # result must not overtake it through a fused turn.
        await asyncio.sleep(0.2)
        release.set()
        state = await client.wait_for_orchestration("g", timeout=WAIT)
    await provider.close()
    assert state.status == "Completed", state
    assert state.output == [1, "event"]
    assert counting.fused == 0


ran: list[int] = []


@perdure.activity(name="Note")
def note(_: perdure.ActivityContext, x: int) -> int:
    ran.append(x)
    return x


@perdure.orchestration(name="OneNote")
async def one_note(ctx: OrchestrationContext, x: int) -> int:
    return int(await ctx.schedule_activity(note, x))


async def test_an_orchestrator_only_runtime_claims_no_work(sqlite_url: str) -> None:
    # Regression: a turn handed its work to the worker of a runtime started
    # with role="orchestrator", which then ran activities it must not run.
    ran.clear()
    async with runtime(sqlite_url, [one_note], [note], role="orchestrator") as rt:
        await rt.client.start_orchestration("n", one_note, 7)
        await reached(rt.client, "n", h.ActivityScheduled)
        await asyncio.sleep(0.3)
        assert ran == []
    async with runtime(sqlite_url, [one_note], [note]) as rt:
        state = await rt.client.wait_for_orchestration("n", timeout=WAIT)
    assert (state.status, state.output, ran) == ("Completed", 7, [7])


def test_the_fast_record_copy_equals_dataclasses_replace() -> None:
    import dataclasses

    import pytest

    from perdure._fused import _evolve
    from perdure._turn import TurnOutput
    from perdure.providers import ActivityClaim, ActivityWork

    work = ActivityWork(
        instance_id="i", execution_id=1, event_id=2, name="Inc", body="{}"
    )
    claim = ActivityClaim("token", 30.0)
    assert _evolve(work, claim=claim) == dataclasses.replace(work, claim=claim)
    commit = TurnCommit(
        instance_id="i",
        execution_id=1,
        lock_token="t",
        history_start=0,
        events=[(1, "{}")],
        consumed=[7],
        activities=[work],
    )
    assert _evolve(
        commit, lock_token=None, consumed=[], acks=[(1, "t")]
    ) == dataclasses.replace(commit, lock_token=None, consumed=[], acks=[(1, "t")])
    output = TurnOutput(commit=commit, driver=None)
    assert _evolve(output, driver=None) == output
    assert _evolve(output, driver=None) is not output
    with pytest.raises(TypeError, match="no fields"):
        _evolve(commit, nope=1)


async def test_a_full_worker_claims_the_next_steps_of_the_results_it_writes(
    storage_url: str,
) -> None:
    # Regression (issue 17): an activity held its worker slot until its
    # result was written (and, before that, until the writer had nothing
    # more to write), so with every slot busy, the fused turns committing
    # those results could not claim the work they scheduled: each step was
    # enqueued and fetched instead (most of a PostgreSQL chain's steps).
    # Finished activities now leave their slots to the steps after them.
    provider = open_provider(storage_url)
    unclaimed: list[tuple[str, int]] = []
    commit = provider.commit_turns

    async def commit_turns(turns: Sequence[TurnCommit]) -> list[bool]:
        for turn in turns:
            unclaimed.extend(
                (w.instance_id, w.event_id) for w in turn.activities if w.claim is None
            )
        return await commit(turns)

    provider.commit_turns = commit_turns  # type: ignore[method-assign]
    limit, steps_each = 4, 10
    async with runtime(provider, [steps], [inc], activity_concurrency=limit) as rt:
        for i in range(limit):
            await rt.client.start_orchestration(f"s{i}", steps, steps_each)
        for i in range(limit):
            state = await rt.client.wait_for_orchestration(f"s{i}", timeout=WAIT)
            assert (state.status, state.output) == ("Completed", steps_each)
    await provider.close()
    # Never more instances than slots: every step found room.
    assert unclaimed == []
