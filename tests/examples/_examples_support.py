"""Helpers of the example tests: load an example module, read its histories."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import perdure
from perdure import events as h

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (once) as module ``example_<name>``."""
    module_name = f"example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


async def histories(url: str, *instances: str) -> dict[str, list[h.AnyEvent]]:
    """The (latest execution's) history of each instance."""
    async with perdure.Client(url) as client:
        return {iid: await client.get_history(iid) for iid in instances}


#: The events that schedule work a cancel event can target.
WORK = (
    h.ActivityScheduled
    | h.TimerCreated
    | h.EventWaitStarted
    | h.SubOrchestrationScheduled
)
#: Those that name their work.
NAMED = h.ActivityScheduled | h.EventWaitStarted | h.SubOrchestrationScheduled


def label(event: perdure.Event) -> str:
    """Activity/wait/sub-orchestration name of a scheduling event; ``timer``."""
    if isinstance(event, h.TimerCreated):
        return "timer"
    assert isinstance(event, NAMED), event
    return event.name


def scheduled(history: Iterable[perdure.Event], name: str) -> list[h.ActivityScheduled]:
    """ActivityScheduled events of activity *name*, in history order."""
    return [e for e in history if isinstance(e, h.ActivityScheduled) and e.name == name]


def names(history: Iterable[perdure.Event]) -> list[str]:
    """Names of the scheduled activities, in history order."""
    return [e.name for e in history if isinstance(e, h.ActivityScheduled)]


def cancelled(history: Sequence[perdure.Event]) -> list[WORK]:
    """Scheduling events of the work that was cancelled, in cancel order.

    Also checks the scope rule that matters most to users: work that had
    already completed is never cancelled, and a cancel event targets work of
    the right kind.
    """
    by_id = {e.event_id: e for e in history}
    done_at = {e.source_event_id: e.event_id for e in history if e.role == "completion"}
    targets = []
    for event in history:
        if event.role != "cancel":
            continue
        assert event.source_event_id is not None, event
        target = by_id[event.source_event_id]
        assert isinstance(target, WORK) and target.work == event.work, (event, target)
        finished = done_at.get(target.event_id)
        assert finished is None or finished > event.event_id, (
            f"completed work {target} was cancelled by {event}"
        )
        targets.append(target)
    return targets


def cancelled_labels(history: Sequence[perdure.Event]) -> list[str]:
    """`label` of each cancelled piece of work, in cancel order."""
    return [label(e) for e in cancelled(history)]


def completed(history: Iterable[perdure.Event], target: perdure.Event) -> Any:
    """The result of the completion event for *target*; fails if none."""
    for event in history:
        if event.source_event_id == target.event_id and event.role == "completion":
            assert isinstance(event, h.ActivityCompleted | h.TimerFired), event
            return event.result if isinstance(event, h.ActivityCompleted) else None
    raise AssertionError(f"{target} never completed")
