"""Test helpers: replay saved histories and simulate turns without storage.

Two tools, both pure (no storage, no event loop, no real clock):

* `replay` re-runs an orchestration against a history saved with
  ``Client.get_history``, the way the runtime does after a restart, and raises
  `perdure.NondeterminismError` if the current code no longer does what the
  history says it did. Use it in CI with recorded ("golden") histories so a
  code change that would break running instances fails a test first.
* `Simulator` runs an orchestration through turns in memory. The test
  decides which scheduled work completes next, with which outcome, when
  external events arrive and how far a virtual clock moves (timers fire when
  the clock passes them). Its `Simulator.history` is exactly what the runtime
  would have stored; `Simulator.rewind` takes a failed simulation back with
  fixed code, as ``Client.rewind`` does.

Example::

    sim = Simulator(order, {"id": "o1"}, activities={"Charge": "ok"})
    result = sim.run()  # runs activities and skips time until blocked
    assert result.status == "Completed"
    replay(order, sim.history, instance_id=sim.instance_id)  # deterministic
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from ._core import _history as h
from ._errors import StorageError
from ._registry import Registry
from ._testing_sim import (
    DEFAULT_START_TIME,
    PendingWork,
    ReplayResult,
    Simulator,
    new_driver,
    result_of,
)

__all__ = ["DEFAULT_START_TIME", "PendingWork", "ReplayResult", "Simulator", "replay"]


def replay(
    orchestration: Callable[..., Any],
    history: Iterable[h.Event | str | dict[str, Any]] | str,
    *,
    activities: Iterable[Callable[..., Any]] = (),
    instance_id: str = "replay",
    execution_id: int = 1,
) -> ReplayResult:
    """Replay a saved history against the current orchestration code.

    Args:
        orchestration: The orchestration function (decorated or not). Its
            name and version need not match the history's: replaying an old
            history against new code is the point.
        history: One execution's events: as events (``Client.get_history``),
            each as JSON text or a decoded dict, or the whole JSON array
            ``perdure history INSTANCE --json`` prints (text).
        activities: Activity functions whose return type hints decode
            results (as registered with the runtime).
        instance_id: The instance's id; it seeds ``new_guid()`` and
            ``random()``, so pass the original when the code uses them.
        execution_id: The execution's number (it seeds them too).

    A rewound history (``Client.rewind``) replays as the runtime replays
    it: the failures a rewind voided, and their cancellations, are skipped.

    Returns:
        The outcome the history reaches with the current code.

    Raises:
        NondeterminismError: The code schedules or cancels different work
            than the history records, ends differently, or the history is
            corrupted (does not begin with OrchestrationStarted, bad ids).
    """
    events = _events(history)
    registry = Registry([orchestration], activities)
    driver = new_driver(registry, orchestration, instance_id, execution_id, events)
    driver.replay(events)
    return result_of(driver.outcome, events, ())


def _events(history: Iterable[h.Event | str | dict[str, Any]] | str) -> list[h.Event]:
    """Events from any of the forms `replay` accepts."""
    if isinstance(history, str):
        try:
            history = json.loads(history)
        except json.JSONDecodeError as exc:
            raise StorageError(f"history is not a JSON array of events: {exc}") from exc
        if not isinstance(history, list):
            raise StorageError("history is not a JSON array of events")
    events: list[h.Event] = []
    for item in history:
        if isinstance(item, dict):
            item = json.dumps(item)
        events.append(h.event_from_json(item) if isinstance(item, str) else item)
    return events
