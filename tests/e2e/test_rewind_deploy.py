"""Client.rewind (DESIGN §9): a fixed deploy takes a failed instance back.

The main scenario: ``Order`` fails on a bug right after activity ``a``
completed, with ``b`` and a timer just scheduled and two children
running. While it is failed, one child completes (its event was raised
before the failure's cancellation reached it) and the other is cancelled
by the failure; their answers are dropped. A fixed deploy rewinds it: it
completes with both children's outcomes, ``b`` runs once, the failure stays
in the history, marked.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from _helpers import WAIT, eventually, of_type, runtime, types

import perdure
from perdure import events as h
from perdure.testing import replay

STARTED: Counter[tuple[str, str]] = Counter()
DONE: Counter[tuple[str, str]] = Counter()
GATES: dict[str, asyncio.Event] = {}


@perdure.activity
async def step(ctx: perdure.ActivityContext, name: str) -> str:
    STARTED[ctx.instance_id, name] += 1
    gate = GATES.get(name)
    if gate is not None:
        await gate.wait()
    DONE[ctx.instance_id, name] += 1
    return name


@perdure.orchestration(name="Kid")
async def kid(ctx: perdure.OrchestrationContext) -> Any:
    return await ctx.schedule_wait("kid-go")


def order(bug: bool) -> Any:
    @perdure.orchestration(name="Order")
    async def code(ctx: perdure.OrchestrationContext, n: int) -> dict[str, Any]:
        iid = ctx.instance_id
        done = ctx.schedule_sub_orchestration(kid, instance_id=f"{iid}-done")
        cut = ctx.schedule_sub_orchestration(kid, instance_id=f"{iid}-cut")
        a = await ctx.schedule_activity(step, "a")
        b = ctx.schedule_activity(step, "b")
        timer = ctx.schedule_timer(0.2)
        if bug:
            raise KeyError(a)
        kids = []
        for child in (done, cut):
            try:
                kids.append(await child)
            except perdure.SubOrchestrationFailed as exc:
                kids.append(exc.error.type)
        await timer
        return {"a": a, "b": await b, "kids": kids}

    return code


@pytest.fixture(autouse=True)
def _counters() -> None:
    STARTED.clear()
    DONE.clear()
    GATES.clear()


@pytest.mark.parametrize("cache", [10_000, 0], ids=["cached", "replayed"])
async def test_a_fixed_deploy_rewinds_a_failed_instance(
    storage_url: str, cache: int
) -> None:
    iid = "order"
    GATES["a"] = gate = asyncio.Event()
    # The children's orchestration is not registered yet: they wait.
    async with runtime(storage_url, [order(bug=True)], [step]) as rt:
        client = rt.client
        await client.start_orchestration(iid, "Order", 1)
        await eventually(lambda: STARTED[iid, "a"] == 1, "a to start")
        await client.raise_event(f"{iid}-done", "kid-go", "done")
        gate.set()
        failed = await client.wait_for_orchestration(iid, timeout=WAIT)
        before = await client.get_history(iid)
    assert failed.status == "Failed"
    assert failed.error is not None and failed.error.type == "KeyError"
    assert types(before)[-5:] == [  # the failure's cascade, in creation order
        "SubOrchestrationCancelRequested",
        "SubOrchestrationCancelRequested",
        "ActivityCancelRequested",
        "TimerCancelled",
        "OrchestrationFailed",
    ]
    async with runtime(storage_url, [order(bug=True), kid], [step]) as rt:
        client = rt.client
        done = await client.wait_for_orchestration(f"{iid}-done", timeout=WAIT)
        cut = await client.wait_for_orchestration(f"{iid}-cut", timeout=WAIT)
        await asyncio.sleep(0.3)  # their answers reach the failed parent
        assert await client.get_history(iid) == before
    assert (done.status, done.output) == ("Completed", "done")
    assert cut.status == "Cancelled"

    fixed = order(bug=False)
    async with runtime(
        storage_url, [fixed, kid], [step], instance_cache_size=cache
    ) as rt:
        client = rt.client
        await client.rewind(iid)
        state = await client.wait_for_orchestration(iid, timeout=WAIT)
        history = await client.get_history(iid)
        with pytest.raises(perdure.PerdureError, match="Completed, not Failed"):
            await client.rewind(iid)
    assert state.status == "Completed", state.error
    assert state.output == {"a": "a", "b": "b", "kids": ["done", "Cancelled"]}
    # a ran before the failure, b (scheduled and cancelled in the failing
    # turn) only after the rewind: each once.
    assert STARTED == DONE
    assert dict(DONE) == {(iid, "a"): 1, (iid, "b"): 1}

    # The failure is kept and marked; nothing before it was rewritten.
    assert history[: len(before)] == before
    failure = before[-1]
    assert isinstance(failure, h.OrchestrationFailed)
    [marker] = of_type(history, h.ExecutionRewound)
    assert marker.event_id == failure.event_id + 1
    assert marker.source_event_id == failure.event_id
    cascade = before[marker.voided_from - 1 : -1]
    assert {e.role for e in cascade} == {"cancel"}
    assert len(cascade) == 4  # b, the timer, both children
    # The children's outcomes were delivered in the rewind turn.
    answers = {
        e.source_event_id: e
        for e in history[marker.event_id :]
        if isinstance(e, h.SubOrchestrationCompleted | h.SubOrchestrationFailed)
    }
    kids = of_type(before, h.SubOrchestrationScheduled)
    completed, cancelled = (answers[k.event_id] for k in kids)
    assert isinstance(completed, h.SubOrchestrationCompleted)
    assert completed.result == "done"
    assert isinstance(cancelled, h.SubOrchestrationFailed)
    assert cancelled.error["type"] == "Cancelled"
    # Every activity answered once; a later replay reaches the same end.
    scheduled = [e.event_id for e in of_type(history, h.ActivityScheduled)]
    answered = [e.source_event_id for e in of_type(history, h.ActivityCompleted)]
    assert sorted(a or 0 for a in answered) == scheduled
    offline = replay(fixed, history, instance_id=iid)
    assert (offline.status, offline.output) == ("Completed", state.output)


async def test_rewind_refuses_what_has_not_failed(storage_url: str) -> None:
    GATES["a"] = asyncio.Event()
    async with runtime(storage_url, [order(bug=False), kid], [step]) as rt:
        client = rt.client
        await client.start_orchestration("running", "Order", 1)
        with pytest.raises(perdure.PerdureError, match="Running, not Failed"):
            await client.rewind("running")
        with pytest.raises(perdure.InstanceNotFound):
            await client.rewind("nobody")
        state = await client.get_status("running")
        assert state is not None and state.status == "Running"


@perdure.activity
def pay(ctx: perdure.ActivityContext, what: str) -> str:
    DONE[ctx.instance_id, what] += 1
    return f"paid {what}"


def billing(version: str) -> Any:
    """``buggy`` fails after paying; ``bad`` changed what it pays first."""

    @perdure.orchestration(name="Billing")
    async def code(ctx: perdure.OrchestrationContext) -> str:
        first = "tax" if version == "bad" else "net"
        paid = await ctx.schedule_activity(pay, first)
        if version == "buggy":
            raise ValueError(paid)
        return paid

    return code


async def test_a_rewind_that_breaks_suspends_and_can_be_rewound_again(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [billing("buggy")], [pay]) as rt:
        await rt.client.start_orchestration("bill", "Billing")
        await rt.client.wait_for_orchestration("bill", timeout=WAIT)
        before = await rt.client.get_history("bill")
    # Code that no longer replays the history: the rewind turn suspends,
    # writing nothing; the rewind waits for resume.
    async with runtime(storage_url, [billing("bad")], [pay]) as rt:
        await rt.client.rewind("bill")

        async def suspended() -> Any:
            state = await rt.client.get_status("bill")
            return state if state is not None and state.status == "Suspended" else None

        state = await eventually(suspended, "bill to be suspended")
        assert state.error is not None and state.error.type == "NondeterminismError"
        assert await rt.client.get_history("bill") == before
    # Resumed with the old bug: the rewind runs and fails again.
    async with runtime(storage_url, [billing("buggy")], [pay]) as rt:
        await rt.client.resume("bill")
        again = await rt.client.wait_for_orchestration("bill", timeout=WAIT)
        second = await rt.client.get_history("bill")
    assert again.status == "Failed"
    assert types(second[len(before) :]) == ["ExecutionRewound", "OrchestrationFailed"]
    # The fix: a second rewind voids the second failure too.
    async with runtime(storage_url, [billing("fixed")], [pay]) as rt:
        await rt.client.rewind("bill")
        done = await rt.client.wait_for_orchestration("bill", timeout=WAIT)
        history = await rt.client.get_history("bill")
    assert (done.status, done.output) == ("Completed", "paid net")
    assert DONE[("bill", "net")] == 1 and len(DONE) == 1
    markers = of_type(history, h.ExecutionRewound)
    failures = of_type(history, h.OrchestrationFailed)
    assert [m.source_event_id for m in markers] == [f.event_id for f in failures]
    assert types(history)[-1] == "OrchestrationCompleted"


async def test_suspend_on_error_keeps_a_rewind_that_fails_again(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [billing("buggy")], [pay]) as rt:
        await rt.client.start_orchestration("bill", "Billing")
        await rt.client.wait_for_orchestration("bill", timeout=WAIT)
    opts: dict[str, Any] = {"suspend_on_error": True}
    async with runtime(storage_url, [billing("buggy")], [pay], **opts) as rt:
        await rt.client.rewind("bill")

        async def suspended() -> bool:
            state = await rt.client.get_status("bill")
            return state is not None and state.status == "Suspended"

        await eventually(suspended, "bill to be suspended")
    async with runtime(storage_url, [billing("fixed")], [pay], **opts) as rt:
        await rt.client.resume("bill")
        done = await rt.client.wait_for_orchestration("bill", timeout=WAIT)
        history = await rt.client.get_history("bill")
    assert (done.status, done.output) == ("Completed", "paid net")
    assert len(of_type(history, h.ExecutionRewound)) == 1


def hanging(hang: bool) -> Any:
    """``Hang`` spins forever once "go" arrives (until the fix)."""

    @perdure.orchestration(name="Hang")
    async def code(ctx: perdure.OrchestrationContext) -> list[Any]:
        slow = ctx.schedule_activity(step, "slow")
        # Long enough that "go" comes first even on a loaded machine (the
        # history below assumes it; a 0.2 s timer fired first under load).
        timer = ctx.schedule_timer(2.0)
        go = await ctx.schedule_wait("go")
        while hang:
            pass
        await timer
        return [go, await slow]

    return code


async def test_a_turn_timeout_is_rewound_and_stale_work_is_dropped(
    storage_url: str,
) -> None:
    # The runtime wrote that failure itself: no cascade, the activity still
    # running keeps its work item, and the turn's event was consumed. The
    # rewind deletes the work item and sends it again: the old attempt's
    # result is dropped, the new one's answers.
    GATES["slow"] = gate = asyncio.Event()
    worker = runtime(storage_url, activities=[step], role="worker")
    async with worker:
        orch = runtime(
            storage_url, [hanging(True)], role="orchestrator", turn_timeout=0.5
        )
        async with orch as rt:
            await rt.client.start_orchestration("hang", "Hang")
            await eventually(lambda: STARTED["hang", "slow"] == 1, "slow to start")
            await rt.client.raise_event("hang", "go", 1)
            failed = await rt.client.wait_for_orchestration("hang", timeout=WAIT)
            before = await rt.client.get_history("hang")
        assert failed.error is not None and failed.error.type == "TurnTimeout"
        assert types(before) == [
            "OrchestrationStarted",
            "ActivityScheduled",
            "TimerCreated",
            "EventWaitStarted",
            "OrchestrationFailed",
        ]
        async with runtime(storage_url, [hanging(False)], role="orchestrator") as rt:
            await rt.client.rewind("hang")
            await eventually(lambda: STARTED["hang", "slow"] == 2, "slow again")
            gate.set()
            await rt.client.raise_event("hang", "go", 2)  # the first was consumed
            done = await rt.client.wait_for_orchestration("hang", timeout=WAIT)
            history = await rt.client.get_history("hang")
    assert (done.status, done.output) == ("Completed", [2, "slow"])
    [marker] = of_type(history, h.ExecutionRewound)
    assert marker.voided_from == marker.source_event_id == len(before)
    assert len(of_type(history, h.ActivityCompleted)) == 1
