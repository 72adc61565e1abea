"""What a recorded golden history is, and the registry of scenarios.

Shared by ``record.py`` (Simulator scenarios, output) and
``_record_runtime.py`` (scenarios recorded on a real Runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perdure._core import _history as h

HERE = Path(__file__).resolve().parent

#: Quick-reacting runtime options for the Runtime-recorded scenarios.
FAST: dict[str, Any] = {
    "cancellation_grace_period": 0.1,
    "poll_interval": 0.05,
    "lock_timeout": 2.0,
}
WAIT = 30.0


@dataclass
class Recording:
    """One execution of one instance, ready to be written as a golden file."""

    name: str
    description: str
    orchestration: Callable[..., Any]
    instance_id: str
    events: Sequence[h.Event]
    turns: list[list[int]]
    execution_id: int = 1
    activities: tuple[Callable[..., Any], ...] = ()
    recorded_by: str = "Simulator"
    # Rewound histories: the program that wrote the turns up to the last
    # failure a rewind voided (``orchestration`` is the fix, for the rest).
    failed_with: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Scenario:
    """A named recipe producing one or more golden files."""

    name: str
    description: str
    files: tuple[str, ...]
    record: Callable[[], list[Recording]]


SCENARIOS: dict[str, Scenario] = {}


def add(scenario: Scenario) -> None:
    assert scenario.name not in SCENARIOS, scenario.name
    SCENARIOS[scenario.name] = scenario
