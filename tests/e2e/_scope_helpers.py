"""Shared pieces of the durable task scope end-to-end tests (DESIGN §4).

Progress is driven by the test, never by timing: the ``Gated`` activity
blocks until the test calls `release` (or until it is cancelled), so each
scenario advances one completion at a time and its history is the same on
every run. That is what lets `_helpers.check_replay` compare a cached run
with a full-replay run event by event (pass it ``open_runtime=runtime``).

Module-level state (gates, the activity log, `NOTES`) is reset by
`runtime`; tests run one at a time per process, so sharing it is safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import perdure
from perdure import ActivityContext, Event, OrchestrationContext, events as h

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
    url: str,
    orchestrations: Iterable[Callable[..., Any]],
    activities: Iterable[Callable[..., Any]] = ACTIVITIES,
    **options: Any,
) -> AsyncIterator[perdure.Runtime]:
    """A started runtime with quick polling, leases and grace period.

    It also runs the `CHILDREN` orchestrations and, unless told otherwise,
    the shared `ACTIVITIES`.
    """
    reset()
    options.setdefault("poll_interval", 0.05)
    options.setdefault("lock_timeout", 2.0)
    options.setdefault("cancellation_grace_period", 0.5)
    rt = perdure.Runtime(
        url,
        orchestrations=[*orchestrations, *CHILDREN],
        activities=list(activities),
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
    predicate: Callable[[list[h.AnyEvent]], bool],
    timeout: float = 10.0,
) -> list[h.AnyEvent]:
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
    client: perdure.Client, instance_id: str, status: str = "Completed"
) -> perdure.OrchestrationState:
    """Wait for the instance to end and check its status."""
    state = await client.wait_for_orchestration(instance_id, timeout=15)
    assert state.status == status, (state.status, state.error)
    return state


def describe(event: Event) -> str:
    """One line per event, for failure messages."""
    fields = {
        f.name: getattr(event, f.name)
        for f in dataclasses.fields(event)
        if f.name not in ("event_id", "timestamp")
    }
    return f"{event.event_id:3} {event.type} {fields}"


def has(events: Iterable[Event], kind: type[Event], **fields: Any) -> bool:
    """True if some event of class *kind* has all of *fields*."""
    return any(
        isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())
        for e in events
    )


def activity(events: Iterable[Event], input: Any) -> h.ActivityScheduled:
    """The one ActivityScheduled event whose input is *input*."""
    found = [
        e for e in events if isinstance(e, h.ActivityScheduled) and e.input == input
    ]
    assert len(found) == 1, f"{len(found)} activities with input {input!r}"
    return found[0]


def schedules_work(event: Event) -> bool:
    """True for an event that schedules durable work (which can be cancelled)."""
    return event.role == "scheduling" and event.work is not None


def _sources(events: Iterable[Event], role: str) -> list[int]:
    """source_event_id of every event with *role*, in history order."""
    found = []
    for e in events:
        if e.role == role:
            assert e.source_event_id is not None, describe(e)
            found.append(e.source_event_id)
    return found


def cancelled_ids(events: Iterable[Event]) -> list[int]:
    """source_event_id of every cancel event, in history order."""
    return _sources(events, "cancel")


def completed_ids(events: Iterable[Event]) -> set[int]:
    """Ids of scheduled work that got a completion event."""
    return set(_sources(events, "completion"))


def open_work(events: Iterable[Event]) -> list[int]:
    """Ids of scheduled work that has neither a completion nor a cancel event.

    (Event waits are answered by EventRaised, which has no source id, so
    waits satisfied by an event are reported open; tests account for that.)
    """
    events = list(events)
    answered = completed_ids(events) | set(cancelled_ids(events))
    return [
        e.event_id for e in events if schedules_work(e) and e.event_id not in answered
    ]
