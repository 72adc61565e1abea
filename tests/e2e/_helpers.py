"""Shared helpers of the end-to-end tests (public API only).

Every e2e scenario is written once as ``async def scenario(client, iid)``
returning a JSON-able summary; `check_replay` runs it on a runtime with the
instance cache on and again with ``instance_cache_size=0`` (every turn
replays the stored history) and asserts both runs produced the same summary
and the same histories (the instance's and its sub-orchestrations'), modulo
wall-clock fields and the instance id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import perdure
from perdure import events as h
from perdure.providers import Provider
from perdure.testing import replay

#: Upper bound for anything a test waits on, so a failure never hangs.
WAIT = 20.0

#: Options that keep every runtime in the e2e tests quick to react and stop.
FAST: dict[str, Any] = {
    "cancellation_grace_period": 0.1,
    "poll_interval": 0.05,
    "lock_timeout": 2.0,
}

Scenario = Callable[[perdure.Client, str], Awaitable[Any]]
#: Opens a runtime: ``(url, orchestrations, activities, **options)``.
OpenRuntime = Callable[..., AbstractAsyncContextManager[perdure.Runtime]]

E = TypeVar("E", bound=perdure.Event)


def runtime(
    url: str | Provider,
    orchestrations: Iterable[Callable[..., Any]] = (),
    activities: Iterable[Callable[..., Any]] = (),
    **options: Any,
) -> perdure.Runtime:
    """A `perdure.Runtime` with the quick `FAST` defaults (overridable)."""
    return perdure.Runtime(
        url,
        orchestrations=list(orchestrations),
        activities=list(activities),
        **{**FAST, **options},
    )


async def run_to_end(
    client: perdure.Client, iid: str, name: Any, input: Any = None
) -> perdure.OrchestrationState:
    """Start an instance and wait (bounded) until it finishes."""
    await client.start_orchestration(iid, name, input)
    return await client.wait_for_orchestration(iid, timeout=WAIT)


def outcome(state: perdure.OrchestrationState) -> dict[str, Any]:
    """The comparable part of a finished state."""
    error = state.error
    return {
        "status": state.status,
        "output": state.output,
        "error": None
        if error is None
        else {"type": error.type, "message": error.message, "category": error.category},
    }


def types(history: Iterable[perdure.Event]) -> list[str]:
    """Event kind names, in history order."""
    return [event.type for event in history]


def of_type(history: Iterable[perdure.Event], kind: type[E]) -> list[E]:
    """Events of one class (from `perdure.events`), in history order."""
    return [event for event in history if isinstance(event, kind)]


def shape(
    history: Iterable[perdure.Event], iid: str | None = None
) -> list[dict[str, Any]]:
    """History as plain dicts without wall-clock fields; *iid* becomes ``<iid>``."""
    rows = []
    for event in history:
        row = {"type": event.type, **dataclasses.asdict(event)}
        for key in ("timestamp", "fire_at", "occurred_at"):
            row.pop(key, None)
        rows.append(row)
    anonymised: list[dict[str, Any]] = _anonymise(rows, iid)
    return anonymised


def _anonymise(value: Any, iid: str | None) -> Any:
    text = json.dumps(value, sort_keys=True, default=repr)
    if iid:
        text = text.replace(iid, "<iid>")
    return json.loads(text)


async def eventually(
    probe: Callable[[], Any | Awaitable[Any]], what: str = "condition"
) -> Any:
    """Poll *probe* (sync or async) until it returns a truthy value; return it."""
    deadline = time.monotonic() + WAIT
    while True:
        value = probe()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def custom_status(client: perdure.Client, iid: str, expected: Any) -> None:
    """Wait until the instance's custom status equals *expected*."""

    async def probe() -> bool:
        state = await client.get_status(iid)
        return state is not None and state.custom_status == expected

    await eventually(probe, f"custom status {expected!r} of {iid}")


async def check_replay(
    url: str | Provider,
    orchestrations: Iterable[Callable[..., Any]],
    activities: Iterable[Callable[..., Any]],
    scenario: Scenario,
    tag: str,
    *,
    open_runtime: OpenRuntime = runtime,
    **options: Any,
) -> tuple[Any, list[h.AnyEvent]]:
    """Run *scenario* cached, then cache-less; assert both runs agree.

    Each run opens its own runtime with *open_runtime* (`runtime` by
    default; it gets *url*, *orchestrations*, *activities*,
    ``instance_cache_size`` and *options*) and an instance id made from
    *tag*. After the scenario, sub-orchestrations still running are waited
    for. The two runs must return the same summary and write the same
    histories, and `perdure.testing.replay` must reach the same ending as
    each stored history of a registered orchestration.

    Returns:
        The cached run's summary and history, for further assertions.
    """
    orchestrations, activities = list(orchestrations), list(activities)
    runs = []
    for cache_size, suffix in ((10_000, "cached"), (0, "replayed")):
        iid = f"{tag}-{suffix}"
        async with open_runtime(
            url, orchestrations, activities, instance_cache_size=cache_size, **options
        ) as rt:
            summary = await scenario(rt.client, iid)
            histories = await _histories(rt.client, iid)
            for instance_id, (history, execution_id) in histories.items():
                _replay_offline(
                    orchestrations, activities, history, instance_id, execution_id
                )
        shapes = {
            i.replace(iid, "<iid>"): shape(history, iid)
            for i, (history, _) in histories.items()
        }
        runs.append((_anonymise(summary, iid), shapes, summary, histories[iid][0]))
    (cached, cached_shapes, summary, history), (replayed, replayed_shapes, _, _) = runs
    # (This module is not assertion-rewritten: spell the difference out.)
    assert cached == replayed, f"cached run {cached!r} != replayed run {replayed!r}"
    if cached_shapes != replayed_shapes:
        diff = difflib.unified_diff(
            _lines(cached_shapes), _lines(replayed_shapes), "cached", "replayed"
        )
        raise AssertionError("histories differ:\n" + "\n".join(diff))
    return summary, history


async def _histories(
    client: perdure.Client, iid: str
) -> dict[str, tuple[list[h.AnyEvent], int]]:
    """History and execution id of *iid* and of its sub-orchestrations.

    Sub-orchestrations still running (being cancelled, say) are waited for.
    """
    state = await client.get_status(iid)
    assert state is not None, iid
    found = {iid: (await client.get_history(iid), state.execution_id)}
    for child in await client.list_instances(limit=1000):
        if child.instance_id.startswith(iid + "::"):
            ended = await client.wait_for_orchestration(child.instance_id, WAIT)
            history = await client.get_history(child.instance_id)
            found[child.instance_id] = (history, ended.execution_id)
    return dict(sorted(found.items()))


def _lines(shapes: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [
        f"{iid}: {json.dumps(row, sort_keys=True)}"
        for iid, rows in shapes.items()
        for row in rows
    ]


def _replay_offline(
    orchestrations: list[Callable[..., Any]],
    activities: list[Callable[..., Any]],
    history: list[h.AnyEvent],
    iid: str,
    execution_id: int,
) -> None:
    """Replay a stored history with `perdure.testing.replay`: same ending."""
    start = history[0]
    assert isinstance(start, h.OrchestrationStarted), start
    by_name = {perdure_name(fn): fn for fn in orchestrations}
    fn = by_name.get(start.name)
    if fn is None:
        return  # an unregistered orchestration: nothing to replay
    result = replay(
        fn, history, activities=activities, instance_id=iid, execution_id=execution_id
    )
    assert result.status == (history[-1].status or "Running"), result


def perdure_name(fn: Callable[..., Any]) -> str:
    """The registered name of a decorated orchestration."""
    # The decorator keeps its definition on the function; no public accessor.
    return str(fn.__perdure_orchestration__.name)  # type: ignore[attr-defined]


async def snapshot(client: perdure.Client) -> list[Any]:
    """Everything the client can see: every instance's state and history."""
    rows = []
    for state in await client.list_instances(limit=1000):
        history = await client.get_history(state.instance_id)
        rows.append((state, shape(history)))
    return sorted(rows, key=lambda row: row[0].instance_id)


async def reached(client: perdure.Client, iid: str, kind: type[perdure.Event]) -> None:
    """Wait until the instance's history holds an event of class *kind*.

    Raising events only after the instance reached its wait keeps the
    history independent of how messages happen to be batched into turns.
    """

    async def probe() -> bool:
        try:
            history = await client.get_history(iid)
        except perdure.InstanceNotFound:
            return False
        return any(isinstance(event, kind) for event in history)

    await eventually(probe, f"{kind.__name__} in the history of {iid}")
