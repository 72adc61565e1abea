"""Occurrence order (DESIGN §7): races are decided by what happened first.

Each test races two things, lets both happen while nobody can run the
instance's turn, and checks that the one that happened first wins, even when
its message was written later. "Nobody can run the turn" comes in two forms:

* ``restart``: the orchestrator is stopped after the first turn and a new
  one starts after both became due (a deploy, a crash): every turn replays;
* ``held``: the runtime stays up, but a peer that crashed holds the
  instance's lock until both are due (a backlog, a dead runtime's lease);
  run with the instance cache on (``cached``) and off (``replayed``).

The reproducers of the new-user trial (two timers, an approval raised while
the worker was down, a payment that finished inside its window with split
roles) are the timer/timer, event/timer and activity/timer cases below.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from _helpers import WAIT, of_type, reached, runtime

import perdure
from perdure import OrchestrationContext, events as h

# Seconds: the first thing happens at FIRST, the second at SECOND, and the
# instance cannot run a turn until HELD (all after the first turn).
FIRST, SECOND, HELD = 0.3, 0.8, 1.4


# --- orchestrations -------------------------------------------------------------


@perdure.activity(name="Sleep")
async def sleep_then(_: perdure.ActivityContext, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@perdure.orchestration(name="TimerChild")
async def timer_child(ctx: OrchestrationContext, seconds: float) -> str:
    await ctx.schedule_timer(seconds)
    return "child done"


@perdure.orchestration(name="TwoTimers")
async def two_timers(ctx: OrchestrationContext, delays: list[float]) -> list[Any]:
    slow, fast = delays
    # The slow timer is scheduled (written) first.
    index, _ = await ctx.select2(ctx.schedule_timer(slow), ctx.schedule_timer(fast))
    return [index]


@perdure.orchestration(name="Approval")
async def approval(ctx: OrchestrationContext, deadline: float) -> list[Any]:
    index, value = await ctx.select2(
        ctx.schedule_timer(deadline), ctx.schedule_wait("decision")
    )
    return [index, value]


@perdure.orchestration(name="PaymentSla")
async def payment_sla(ctx: OrchestrationContext, times: list[float]) -> list[Any]:
    pay, window = times
    index, value = await ctx.select2(
        ctx.schedule_timer(window), ctx.schedule_activity(sleep_then, pay)
    )
    return [index, value]


@perdure.orchestration(name="ChildSla")
async def child_sla(ctx: OrchestrationContext, times: list[float]) -> list[Any]:
    child, window = times
    index, value = await ctx.select2(
        ctx.schedule_timer(window), ctx.schedule_sub_orchestration(timer_child, child)
    )
    return [index, value]


@perdure.orchestration(name="EventOrWork")
async def event_or_work(ctx: OrchestrationContext, work: float) -> list[Any]:
    index, value = await ctx.select2(
        ctx.schedule_activity(sleep_then, work), ctx.schedule_wait("e")
    )
    return [index, value]


ORCHESTRATIONS: list[Callable[..., Any]] = [
    two_timers,
    approval,
    payment_sla,
    child_sla,
    timer_child,
]
ORCHESTRATIONS += [event_or_work]
ACTIVITIES: list[Callable[..., Any]] = [sleep_then]


# --- holding an instance as a crashed peer would ----------------------------------


async def hold_lock(url: str, iid: str, until: float) -> None:
    """Lock *iid* as a runtime that fetched it and died would, until *until*.

    *until* is a ``time.time()`` value; on PostgreSQL it is converted to the
    database clock, which leases use.
    """
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=10)
        try:
            with conn:
                conn.execute(
                    "UPDATE instances SET lock_token = 'crashed-peer',"
                    " locked_until = ? WHERE instance_id = ?",
                    (until, iid),
                )
        finally:
            conn.close()
        return
    import psycopg

    from perdure.providers._pg_schema import quote_ident, split_url

    conninfo, schema = split_url(url, None)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as c:
        await c.execute(
            f"UPDATE {quote_ident(schema)}.instances SET lock_token = 'crashed-peer',"
            " locked_until = extract(epoch FROM clock_timestamp()) + %s"
            " WHERE instance_id = %s",
            (until - time.time(), iid),
        )


# --- the scenario runner -------------------------------------------------------------


async def race(
    url: str,
    variant: str,
    name: str,
    input: Any,
    *,
    first_turn: type[perdure.Event],
    during: Any = None,
    worker_up: bool = False,
) -> tuple[perdure.OrchestrationState, list[h.AnyEvent]]:
    """Start *name*, make its turns wait (per *variant*), return the end state.

    *during(client, iid, t0)* is awaited while the instance cannot run a
    turn (it raises events at the right moments); *worker_up* runs
    activities on a worker runtime that stays up during a ``restart``.
    """
    iid = f"{name}-{variant}"
    cache = 0 if variant == "replayed" else 10_000
    t0 = 0.0
    if variant == "restart":
        role = "orchestrator" if worker_up else "all"
        async with runtime(url, ORCHESTRATIONS, ACTIVITIES, role=role) as rt:
            t0 = time.time()
            await rt.client.start_orchestration(iid, name, input)
            await reached(rt.client, iid, first_turn)
        worker = (
            runtime(url, ORCHESTRATIONS, ACTIVITIES, role="worker")
            if worker_up
            else None
        )
        if worker is not None:
            await worker.start()
        try:
            async with perdure.Client(url) as client:
                if during is not None:
                    await during(client, iid, t0)
            await asyncio.sleep(max(0.0, t0 + HELD - time.time()))
        finally:
            if worker is not None:
                await worker.shutdown()
        async with runtime(url, ORCHESTRATIONS, ACTIVITIES) as rt:
            state = await rt.client.wait_for_orchestration(iid, timeout=WAIT)
            history = await rt.client.get_history(iid)
        return state, history
    async with runtime(
        url, ORCHESTRATIONS, ACTIVITIES, instance_cache_size=cache
    ) as rt:
        t0 = time.time()
        await rt.client.start_orchestration(iid, name, input)
        await reached(rt.client, iid, first_turn)
        await hold_lock(url, iid, t0 + HELD)
        if during is not None:
            await during(rt.client, iid, t0)
        state = await rt.client.wait_for_orchestration(iid, timeout=WAIT)
        history = await rt.client.get_history(iid)
    return state, history


def raise_at(name: str, at: float, data: Any) -> Any:
    async def during(client: perdure.Client, iid: str, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + at - time.time()))
        await client.raise_event(iid, name, data)

    return during


def delivered_together(
    history: Iterable[perdure.Event], *kinds: type[perdure.Event]
) -> None:
    """The racing messages were delivered in one turn, after the downtime."""
    found = [e for e in history if isinstance(e, kinds)]
    assert len({e.timestamp for e in found}) == 1, found


VARIANTS = ["cached", "replayed", "restart"]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_earlier_timer_wins_although_written_later(
    storage_url: str, variant: str
) -> None:
    state, history = await race(
        storage_url, variant, "TwoTimers", [SECOND, FIRST], first_turn=h.TimerCreated
    )
    assert state.status == "Completed", state
    assert state.output == [1]
    fired = of_type(history, h.TimerFired)
    created = of_type(history, h.TimerCreated)
    # Both were due when the turn came: the 0.3 s timer first in history.
    assert [e.source_event_id for e in fired][:1] == [created[1].event_id]
    assert all(e.timestamp >= created[0].fire_at - 1e-6 for e in fired[1:])


@pytest.mark.parametrize("variant", VARIANTS)
async def test_event_raised_before_its_deadline_wins(
    storage_url: str, variant: str
) -> None:
    during = raise_at("decision", FIRST, {"approved": True})
    state, history = await race(
        storage_url,
        variant,
        "Approval",
        SECOND,
        first_turn=h.EventWaitStarted,
        during=during,
    )
    assert state.status == "Completed", state
    assert state.output == [1, {"approved": True}]
    raised = of_type(history, h.EventRaised)[0]
    # Delivered late: the event records when it really happened.
    assert raised.occurred_at is not None
    assert raised.occurred_at < raised.timestamp
    delivered_together(history, h.EventRaised, h.TimerFired)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_activity_finished_inside_its_window_wins(
    storage_url: str, variant: str
) -> None:
    state, history = await race(
        storage_url,
        variant,
        "PaymentSla",
        [FIRST, SECOND],
        first_turn=h.ActivityScheduled,
        worker_up=True,
    )
    assert state.status == "Completed", state
    assert state.output == [1, f"slept {FIRST}"]
    delivered_together(history, h.ActivityCompleted, h.TimerFired)


@pytest.mark.parametrize("variant", ["cached", "replayed"])
async def test_child_finished_inside_its_window_wins(
    storage_url: str, variant: str
) -> None:
    state, history = await race(
        storage_url,
        variant,
        "ChildSla",
        [FIRST, SECOND],
        first_turn=h.SubOrchestrationScheduled,
    )
    assert state.status == "Completed", state
    assert state.output == [1, "child done"]
    delivered_together(history, h.SubOrchestrationCompleted, h.TimerFired)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("event_first", [True, False])
async def test_event_and_activity_in_occurrence_order(
    storage_url: str, variant: str, event_first: bool
) -> None:
    event_at, work = (FIRST, SECOND) if event_first else (SECOND, FIRST)
    during = raise_at("e", event_at, "event")
    state, history = await race(
        storage_url,
        variant,
        "EventOrWork",
        work,
        first_turn=h.EventWaitStarted,
        during=during,
        worker_up=True,
    )
    assert state.status == "Completed", state
    assert state.output == ([1, "event"] if event_first else [0, f"slept {FIRST}"])
    delivered_together(history, h.EventRaised, h.ActivityCompleted)


class _SkewedTime:
    """Stands in for the ``time`` module: this machine's clock 30 s slow."""

    @staticmethod
    def time() -> float:
        return time.time() - 30.0


async def test_postgres_runtime_with_a_skewed_clock_orders_by_the_database_clock(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import perdure.providers.postgres as pg

    if not storage_url.startswith("postgres"):
        pytest.skip("the database clock is PostgreSQL's (SQLite uses this machine's)")
    # The runtime's machine is 30 s behind the database: a timer stamped
    # with its own clock would be due at once and beat the event.
    monkeypatch.setattr(pg, "time", _SkewedTime)
    state, history = await race(
        storage_url,
        "cached",
        "Approval",
        SECOND,
        first_turn=h.EventWaitStarted,
        during=raise_at("decision", FIRST, "yes"),
    )
    assert state.output == [1, "yes"]
    created = of_type(history, h.TimerCreated)[0]
    start = history[0]
    assert abs(start.timestamp - time.time()) < 30  # the database's clock
    assert abs(created.fire_at - (start.timestamp + SECOND)) < 1e-6
