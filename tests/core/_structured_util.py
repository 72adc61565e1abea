"""Helpers of the structured-concurrency tests (shield, timeout, task groups).

`Twin` is a `Simulator` that runs every turn twice: on its own driver, kept
in memory, and on a second simulator whose driver is rebuilt from the
history (``restart()``) before every turn, as the runtime does on a cache
miss. After each turn both histories and results must be equal, so a test
driving a `Twin` checks its rule both ways at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from perdure import events as h
from perdure.testing import Simulator

__all__ = ["Twin", "flags", "last_types"]

Message = tuple[type[h.Event], int | None, dict[str, Any]]


class Twin(Simulator):
    """A simulator checked against a twin rebuilt before every turn."""

    def __init__(
        self,
        orchestration: Callable[..., Any],
        input: Any = None,
        *,
        instance_id: str = "simulated",
    ) -> None:
        self.rebuilt = Simulator(orchestration, input, instance_id=instance_id)
        super().__init__(orchestration, input, instance_id=instance_id)
        self._check()

    def _run_turn(self, messages: list[Message]) -> None:
        if getattr(self, "_history", None):  # every turn after the start
            twin = self.rebuilt
            twin.restart()
            twin.now = self.now
            twin._run_turn(messages)
            super()._run_turn(messages)
            self._check()
        else:
            super()._run_turn(messages)

    def _check(self) -> None:
        twin = self.rebuilt
        assert twin.history == self.history, "rebuilt driver wrote another history"
        mine, theirs = self.result, twin.result
        assert (mine.status, mine.output, mine.error) == (
            theirs.status,
            theirs.output,
            theirs.error,
        )


def flags(history: Iterable[h.Event]) -> list[tuple[str, str, bool]]:
    """(type, name or "", shielded) of every scheduling event, in order."""
    return [
        (e.type, str(getattr(e, "name", "")), bool(getattr(e, "shielded", False)))
        for e in history
        if e.role == "scheduling"
    ]


def last_types(sim: Simulator) -> list[str]:
    """Event types of the most recent turn."""
    return [e.type for e in sim.last_turn]
