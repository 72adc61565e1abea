"""Shared pieces of the durable task scope end-to-end tests (DESIGN §4).

Progress is driven by the test, never by timing: the ``Gated`` activity
blocks until the test calls `release` (or until it is cancelled), so each
scenario advances one completion at a time and its history is the same on
every run. That is what lets `assert_replay_identical` compare a cached run
with a full-replay run event by event.

Module-level state (gates, the activity log, `NOTES`) is reset by
`runtime`; tests run one at a time per process, so sharing it is safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import perdure
from perdure import ActivityContext, Event, OrchestrationContext

CANCEL_TYPES = frozenset(
    {
        "ActivityCancelRequested",
        "TimerCancelled",
        "EventWaitCancelled",
        "SubOrchestrationCancelRequested",
    }
)
SCHEDULING_TYPES = frozenset(
    {
        "ActivityScheduled",
        "TimerCreated",
        "EventWaitStarted",
        "SubOrchestrationScheduled",
    }
)

#: Keys of the Echo/Gated activities that actually started, in start order.
RAN: list[str] = []
#: Free-form records written by orchestration code (e.g. from ``finally``).
NOTES: list[str] = []
_gates: dict[str, asyncio.Event] = {}
_started: dict[str, asyncio.Event] = {}
_cancel_seen: dict[str, asyncio.Event] = {}


def reset() -> None:
    """Forget every gate and record (done by `runtime`)."""
    RAN.clear()
    NOTES.clear()
    _gates.clear()
    _started.clear()
    _cancel_seen.clear()


def _flag(table: dict[str, asyncio.Event], key: str) -> asyncio.Event:
    if key not in table:
        table[key] = asyncio.Event()
    return table[key]


def release(key: str) -> None:
    """Let the ``Gated`` activity *key* return."""
    _flag(_gates, key).set()


async def started(key: str, timeout: float = 10.0) -> None:
    """Wait until the ``Gated`` activity *key* is running."""
    await asyncio.wait_for(_flag(_started, key).wait(), timeout)


async def saw_cancel(key: str, timeout: float = 10.0) -> None:
    """Wait until the running ``Gated`` activity *key* observed its cancellation."""
    await asyncio.wait_for(_flag(_cancel_seen, key).wait(), timeout)


# ------------------------------------------------------------------ handlers
@perdure.activity(name="Echo")
async def echo(ctx: ActivityContext, value: Any) -> Any:
    RAN.append(str(value))
    return value


@perdure.activity(name="Gated")
async def gated(ctx: ActivityContext, key: str) -> str:
    RAN.append(key)
    _flag(_started, key).set()
    gate = asyncio.ensure_future(_flag(_gates, key).wait())
    cancelled = asyncio.ensure_future(ctx.cancelled)
    try:
        await asyncio.wait({gate, cancelled}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gate.cancel()
        cancelled.cancel()
    if ctx.is_cancelled():
        _flag(_cancel_seen, key).set()
        return f"late:{key}"  # the engine must discard this
    return key


@perdure.activity(name="Boom")
async def boom(ctx: ActivityContext, message: str) -> None:
    raise ValueError(message)


@perdure.orchestration(name="WaitForever")
async def wait_forever(ctx: OrchestrationContext, name: str) -> Any:
    """Child that blocks on an event nobody raises."""
    return await ctx.schedule_wait(name)


@perdure.orchestration(name="Nest")
async def nest(ctx: OrchestrationContext, name: str) -> Any:
    """Child that blocks on its own child (a grandchild of the caller)."""
    return await ctx.schedule_sub_orchestration("WaitForever", name)


ACTIVITIES = (echo, gated, boom)
CHILDREN = (wait_forever, nest)


@asynccontextmanager
async def runtime(
    url: str, orchestrations: Iterable[Callable[..., Any]], **options: Any
) -> AsyncIterator[perdure.Runtime]:
    """A started runtime with quick polling, leases and grace period."""
    reset()
    options.setdefault("poll_interval", 0.05)
    options.setdefault("lock_timeout", 2.0)
    options.setdefault("cancellation_grace_period", 0.5)
    rt = perdure.Runtime(
        url,
        orchestrations=[*orchestrations, *CHILDREN],
        activities=ACTIVITIES,
        **options,
    )
    await rt.start()
    try:
        yield rt
    finally:
        for gate in _gates.values():
            gate.set()
        await rt.shutdown(timeout=2.0)


# ------------------------------------------------------------------- history
async def history_until(
    client: perdure.Client,
    instance_id: str,
    predicate: Callable[[list[Event]], bool],
    timeout: float = 10.0,
) -> list[Event]:
    """Poll the history until *predicate* holds; fail with the history if not."""
    deadline = time.monotonic() + timeout
    while True:
        events = await client.get_history(instance_id)
        if predicate(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(
                f"history of {instance_id} never met the condition:\n"
                + "\n".join(describe(e) for e in events)
            )
        await asyncio.sleep(0.01)


async def finish(
    rt: perdure.Runtime, instance_id: str, status: str = "Completed"
) -> perdure.OrchestrationState:
    """Wait for the instance to end and check its status."""
    state = await rt.client.wait_for_orchestration(instance_id, timeout=15)
    assert state.status == status, (state.status, state.error)
    return state


def describe(event: Event) -> str:
    """One line per event, for failure messages."""
    fields = {k: v for k, v in _fields(event).items() if k not in ("event_id",)}
    return f"{event.event_id:3} {event.type} {fields}"


def _fields(event: Event) -> dict[str, Any]:
    return {
        f.name: getattr(event, f.name)
        for f in dataclasses.fields(event)
        if f.name != "timestamp"
    }


def of_type(events: list[Event], *types: str) -> list[Event]:
    """Events of the given kinds, in history order."""
    return [e for e in events if e.type in types]


def has(events: list[Event], type: str, **fields: Any) -> bool:
    """True if some event of kind *type* has all of *fields*."""
    return any(
        e.type == type and all(getattr(e, k, None) == v for k, v in fields.items())
        for e in events
    )


def activity(events: list[Event], input: Any) -> Event:
    """The one ActivityScheduled event whose input is *input*."""
    found = [e for e in of_type(events, "ActivityScheduled") if e.input == input]
    assert len(found) == 1, f"{len(found)} activities with input {input!r}"
    return found[0]


def cancelled_ids(events: list[Event]) -> list[int]:
    """source_event_id of every cancel event, in history order."""
    return [e.source_event_id for e in events if e.type in CANCEL_TYPES]  # type: ignore[misc]


def completed_ids(events: list[Event]) -> set[int]:
    """Ids of scheduled work that got a completion event."""
    return {
        e.source_event_id  # type: ignore[misc]
        for e in events
        if e.source_event_id is not None and e.type not in CANCEL_TYPES
    }


def open_work(events: list[Event]) -> list[int]:
    """Ids of scheduled work that has neither a completion nor a cancel event.

    (Event waits are answered by EventRaised, which has no source id, so
    waits satisfied by an event are reported open; tests account for that.)
    """
    answered = completed_ids(events) | set(cancelled_ids(events))
    return [
        e.event_id
        for e in events
        if e.type in SCHEDULING_TYPES and e.event_id not in answered
    ]


def normalize(events: list[Event], instance_id: str) -> list[str]:
    """Events as JSON without timestamps (and with the instance id masked)."""
    out = []
    for event in events:
        data = {"type": event.type, **_fields(event)}
        data.pop("fire_at", None)  # derived from the turn's wall-clock time
        data.pop("occurred_at", None)  # wall clock too, and only when late
        out.append(json.dumps(data, sort_keys=True).replace(instance_id, "<id>"))
    return out


# ------------------------------------------------------------------- replay
Scenario = Callable[[perdure.Runtime, str], Awaitable[None]]


async def _recorded_run(
    url: str,
    orchestrations: Iterable[Callable[..., Any]],
    scenario: Scenario,
    instance_id: str,
    options: dict[str, Any],
) -> dict[str, list[str]]:
    async with runtime(url, orchestrations, **options) as rt:
        await scenario(rt, instance_id)
        # The scenario may leave children being cancelled: let them end.
        ids = [instance_id]
        for state in await rt.client.list_instances(limit=1000):
            if state.instance_id.startswith(instance_id + "::"):
                ids.append(state.instance_id)
                await rt.client.wait_for_orchestration(state.instance_id, timeout=15)
        return {
            i.replace(instance_id, "<id>"): normalize(
                await rt.client.get_history(i), instance_id
            )
            for i in sorted(ids)
        }


async def assert_replay_identical(
    url: str,
    orchestrations: Iterable[Callable[..., Any]],
    scenario: Scenario,
    **options: Any,
) -> None:
    """Run *scenario* cached, then with a full replay on every turn; compare.

    The histories (the instance's and its sub-orchestrations') must be
    identical apart from timestamps.
    """
    orchestrations = list(orchestrations)
    cached = await _recorded_run(url, orchestrations, scenario, "cached", options)
    replayed = await _recorded_run(
        url,
        orchestrations,
        scenario,
        "replayed",
        {**options, "instance_cache_size": 0},
    )
    if replayed != cached:
        diff = difflib.unified_diff(
            _lines(cached), _lines(replayed), "cached", "replayed", lineterm=""
        )
        raise AssertionError("histories differ:\n" + "\n".join(diff))


def _lines(histories: dict[str, list[str]]) -> list[str]:
    return [f"{iid}: {event}" for iid, events in histories.items() for event in events]
