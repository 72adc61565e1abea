"""examples/saga.py: the undo activities run, in reverse, under a shield.

On both backends (``storage_url``): the three orders' outputs and ledgers,
and in each history the undo activities scheduled one after another, last
step first, with ``shielded=True`` (the steps without it). Then
`Client.cancel_instance` arriving while an undo activity runs: the rest of
the undo still runs and the instance ends Cancelled. Last, the same saga
without the shield: its undo is refused (logged with a hint), nothing undone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from _examples_support import EXAMPLES, cancelled_labels, histories, load, names

import perdure
from perdure import ActivityContext, OrchestrationContext, events as h

saga = load("saga")

STEPS = ["Reserve", "Charge", "Ship"]
UNDO = ["Recall", "Refund", "Release"]  # reverse order of their steps


@pytest.fixture(params=["cached", "replayed"])
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Runtime options: the instance cache on, or a full replay every turn."""
    return {} if request.param == "cached" else {"instance_cache_size": 0}


def ledger(instance: str) -> list[str]:
    """What the example's shop did for *instance*, in order."""
    prefix = f"{instance} "
    return [e.removeprefix(prefix) for e in saga.LEDGER if e.startswith(prefix)]


def activities(history: Sequence[h.AnyEvent]) -> list[h.ActivityScheduled]:
    return [e for e in history if isinstance(e, h.ActivityScheduled)]


def check_undo(
    history: Sequence[h.AnyEvent], steps: list[str], undo: list[str]
) -> None:
    """*steps* ran unshielded, then *undo* shielded, one at a time, all done."""
    scheduled = activities(history)
    assert [e.name for e in scheduled] == steps + undo
    assert [e.shielded for e in scheduled] == [False] * len(steps) + [True] * len(undo)
    assert {e.scope for e in scheduled} == {"0.1"}  # all in the booking's task
    outcome = {e.source_event_id: e for e in history if e.role == "completion"}
    undone = scheduled[len(steps) :]
    for event in undone:
        assert isinstance(outcome.get(event.event_id), h.ActivityCompleted), event
    # Sequential: each undo is scheduled after the previous one completed.
    for before, after in itertools.pairwise(undone):
        assert outcome[before.event_id].event_id < after.event_id
    # Nothing cancelled an undo.
    cancels = {e.source_event_id for e in history if e.role == "cancel"}
    assert not cancels & {e.event_id for e in undone}


async def test_saga(storage_url: str, options: dict[str, Any]) -> None:
    outputs = await saga.run(storage_url, **options)
    assert outputs == {
        saga.SHIPPED: "shipped",
        saga.DECLINED: "Charge failed (card declined); undone",
        saga.LATE: "timed out; undone",
    }
    runs = await histories(storage_url, saga.SHIPPED, saga.DECLINED, saga.LATE)

    shipped = runs[saga.SHIPPED]
    assert names(shipped) == STEPS
    assert cancelled_labels(shipped) == ["timer"]  # the deadline, unneeded
    assert ledger(saga.SHIPPED) == ["reserved", "charged", "shipped"]

    # A failed step: the steps started so far are undone, last first.
    declined = runs[saga.DECLINED]
    check_undo(declined, ["Reserve", "Charge"], ["Refund", "Release"])
    assert ledger(saga.DECLINED) == ["reserved", "nothing to refund", "released"]

    # The deadline: Ship is cancelled, then all three are undone in reverse.
    late = runs[saga.LATE]
    check_undo(late, STEPS, UNDO)
    assert cancelled_labels(late) == ["Ship"]
    assert any(isinstance(e, h.TimerFired) for e in late)
    assert ledger(saga.LATE) == [
        "reserved",
        "charged",
        "nothing to recall",
        "refunded",
        "released",
    ]


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("order", [saga.LATE, saga.DECLINED])
async def test_cancel_instance_mid_compensation_finishes_the_undo(
    storage_url: str, order: str
) -> None:
    """cancel_instance while Refund runs: Release still runs, then Cancelled."""
    refund_started, gate = asyncio.Event(), asyncio.Event()

    @perdure.activity(name="Refund")
    async def gated_refund(ctx: ActivityContext, data: dict[str, Any]) -> None:
        refund_started.set()
        await asyncio.wait_for(gate.wait(), 20)
        await saga.refund(ctx, data)

    activities_ = [a for a in saga.ACTIVITIES if a is not saga.refund]
    saga.LEDGER.clear()
    iid = f"{order}-cancelled"
    async with perdure.Runtime(
        storage_url,
        orchestrations=[saga.order_saga],
        activities=[*activities_, gated_refund],
        poll_interval=0.05,
        cancellation_grace_period=0.1,
    ) as rt:
        client = rt.client
        await client.start_orchestration(
            iid, saga.order_saga, {**saga.ORDERS[order], "id": iid}
        )
        await asyncio.wait_for(refund_started.wait(), 20)
        await client.cancel_instance(iid, reason="customer gave up")

        async def cancel_delivered() -> bool:
            history = await client.get_history(iid)
            return any(isinstance(e, h.OrchestrationCancelRequested) for e in history)

        await wait_for(cancel_delivered, "the cancel request in history")
        gate.set()  # Refund finishes only now, after the cancel arrived
        state = await client.wait_for_orchestration(iid, timeout=20)
        history = await client.get_history(iid)

    assert state.status == "Cancelled", state
    steps = STEPS if order == saga.LATE else ["Reserve", "Charge"]
    undo = UNDO if order == saga.LATE else ["Refund", "Release"]
    check_undo(history, steps, undo)
    (request,) = [e for e in history if isinstance(e, h.OrchestrationCancelRequested)]
    refund = next(e for e in activities(history) if e.name == "Refund")
    release = next(e for e in activities(history) if e.name == "Release")
    # The cancel arrived during Refund; Release was scheduled after it.
    assert refund.event_id < request.event_id < release.event_id
    assert isinstance(history[-1], h.OrchestrationCancelled)
    assert sum(e.role == "terminal" for e in history) == 1
    assert ledger(iid)[-2:] == [
        "refunded" if order == saga.LATE else "nothing to refund",
        "released",
    ]


# The saga as a Temporal user first writes it: no shield.
@perdure.orchestration(name="UnshieldedSaga")
async def unshielded_saga(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    async def book() -> None:
        undo: list[Any] = []
        try:
            for step, compensation in saga.STEPS:
                undo.append(compensation)
                await ctx.schedule_activity(step, order)
        except (perdure.Cancelled, perdure.ActivityFailed):
            for compensation in reversed(undo):
                await ctx.schedule_activity(compensation, order)  # raises Cancelled
            raise

    try:
        await ctx.timeout(order["deadline"], book())
    except perdure.DurableTimeout:
        return "timed out"
    return "shipped"


async def test_without_the_shield_the_undo_is_refused_and_logged(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="perdure.orchestration")
    iid = "unshielded"
    async with perdure.Runtime(
        sqlite_url,
        orchestrations=[unshielded_saga],
        activities=saga.ACTIVITIES,
        poll_interval=0.05,
        cancellation_grace_period=0.1,
    ) as rt:
        await rt.client.start_orchestration(
            iid, unshielded_saga, {**saga.ORDERS[saga.LATE], "id": iid}
        )
        state = await rt.client.wait_for_orchestration(iid, timeout=20)
        history = await rt.client.get_history(iid)
    assert (state.status, state.output) == ("Completed", "timed out")
    assert names(history) == STEPS  # no undo was ever scheduled
    (record,) = [r for r in caplog.records if r.name == "perdure.orchestration"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"[{iid}]" in message and "ctx.shield()" in message, message


def test_the_docs_show_the_example_code() -> None:
    doc = (EXAMPLES.parent / "docs" / "cancellation.md").read_text()
    block = doc.split("The whole orchestration logic:\n\n```python\n")[1]
    assert block.split("```")[0] in (EXAMPLES / "saga.py").read_text()
