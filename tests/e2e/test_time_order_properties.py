"""Generated races with downtime: the first thing to occur always wins (DESIGN §7).

Hypothesis draws a race (timers, activities and event waits under one
``select``), when each of its things happens, and the moments at which the
orchestrator is up; between those moments nothing runs a turn, so due
messages pile up and are delivered in batches. Time is a fake clock given to
the SQLite provider, so a draw runs in milliseconds and the real provider,
dispatcher and driver decide the order. Every run is checked against the
oracle (the winner is the arm that occurred first), replayed from its stored
history, and repeated with the instance cache off: same history.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from _helpers import of_type, shape
from hypothesis import HealthCheck, given, settings, strategies as st

import perdure
from perdure import OrchestrationContext, _messages as m, events as h
from perdure._dispatcher import Dispatcher, DispatcherOptions
from perdure._registry import Registry
from perdure.providers import ActivityItem, ActivityResult
from perdure.providers.sqlite import SqliteProvider
from perdure.testing import replay

T0 = 1_000_000.0


@perdure.orchestration(name="GeneratedRace")
async def generated_race(ctx: OrchestrationContext, arms: list[dict[str, Any]]) -> Any:
    futures = []
    for i, arm in enumerate(arms):
        if arm["kind"] == "timer":
            futures.append(ctx.schedule_timer(arm["at"]))
        elif arm["kind"] == "activity":
            futures.append(ctx.schedule_activity("Work", i))
        else:
            futures.append(ctx.schedule_wait(f"e{i}"))
    index, _ = await ctx.select(*futures)
    return index


class FakeClock:
    """The provider's clock: moved by the test, never by the machine."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def _turns(provider: SqliteProvider, dispatcher: Dispatcher) -> None:
    """Run every turn that is due now (the orchestrator is up)."""
    for _ in range(10):
        items = await provider.fetch_orchestrations(100, 60.0)
        if not items:
            return
        await dispatcher._process(items)


async def _run(
    arms: list[dict[str, Any]], ups: list[float], cache_size: int
) -> tuple[Any, list[h.AnyEvent]]:
    clock = FakeClock()
    provider = SqliteProvider(":memory:", clock=clock)
    await provider.open()
    try:
        registry = Registry([generated_race])
        options = DispatcherOptions(
            batch_size=100,
            lock_timeout=60.0,
            max_attempts=10,
            cache_size=cache_size,
            poll_interval=1.0,
        )
        dispatcher = Dispatcher(provider, registry, options, lambda ref: None)
        client = perdure.Client(provider)
        await client.start_orchestration("race", "GeneratedRace", arms)
        await _turns(provider, dispatcher)  # first turn at T0: schedules all
        happenings = sorted(
            (arm["at"], i) for i, arm in enumerate(arms) if arm["kind"] != "timer"
        )
        up_moments = {T0 + u for u in ups}
        moments = sorted({*(T0 + at for at, _ in happenings), *up_moments})
        work: dict[int, ActivityItem] = {}
        for moment in moments:
            clock.now = moment
            for at, i in happenings:
                if T0 + at != moment:
                    continue
                if arms[i]["kind"] == "event":
                    await client.raise_event("race", f"e{i}", i)
                    continue
                if not work:
                    for fetched in await provider.fetch_activities(100, 60.0):
                        work[json.loads(fetched.body)["input"]] = fetched
                item = work.pop(i, None)
                if item is None:
                    continue  # cancelled: its queued work was deleted
                body = {"execution_id": 1, "event_id": item.event_id, "result": i}
                message = m.message(m.ACTIVITY_COMPLETED, body)
                result = ActivityResult(
                    id=item.id,
                    lock_token=item.lock_token,
                    instance_id="race",
                    message=message,
                )
                await provider.complete_activities([result])
            if moment in up_moments:
                await _turns(provider, dispatcher)
        clock.now = T0 + max(ups) + 1000.0
        await _turns(provider, dispatcher)
        state = await client.get_status("race")
        history = await client.get_history("race")
        assert state is not None and state.status == "Completed", state
        return state.output, history
    finally:
        await provider.close()


# Distinct occurrence times (0.01 s apart) so the oracle has one answer.
_times = st.lists(
    st.integers(min_value=1, max_value=400), min_size=1, max_size=6, unique=True
)


@st.composite
def races(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[float]]:
    times = draw(_times)
    kinds = draw(
        st.lists(
            st.sampled_from(["timer", "activity", "event"]),
            min_size=len(times),
            max_size=len(times),
        )
    )
    arms = [{"kind": k, "at": t / 100} for k, t in zip(kinds, times, strict=True)]
    # The orchestrator is up at a few random moments, and surely at the end.
    ups = draw(st.lists(st.integers(min_value=1, max_value=450), max_size=4))
    return arms, sorted({u / 100 + 0.005 for u in ups} | {5.0})


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(races())
def test_generated_races_are_won_by_the_first_occurrence(
    race: tuple[list[dict[str, Any]], list[float]],
) -> None:
    arms, ups = race
    first = min(range(len(arms)), key=lambda i: arms[i]["at"])
    output, history = asyncio.run(_run(arms, ups, cache_size=100))
    assert output == first, (arms, ups, [e.type for e in history])
    # Delivered in occurrence order; a timer never before its fire time.
    fire_at = {e.event_id: e.fire_at for e in of_type(history, h.TimerCreated)}
    occurred = []
    for event in history:
        if isinstance(event, h.TimerFired):
            assert event.source_event_id is not None
            assert event.timestamp >= fire_at[event.source_event_id]
            occurred.append(fire_at[event.source_event_id])
        elif isinstance(event, h.ActivityCompleted | h.EventRaised):
            late = event.occurred_at
            occurred.append(event.timestamp if late is None else late)
    assert occurred == sorted(occurred)
    # The stored history replays, and a cache-less run writes the same one.
    replayed = replay(generated_race, history, instance_id="race")
    assert replayed.status == "Completed" and replayed.output == first
    _, again = asyncio.run(_run(arms, ups, cache_size=0))
    assert shape(again) == shape(history)
