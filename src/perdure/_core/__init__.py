"""The pure replay kernel: no I/O, no clock, no threads.

Internal API, re-exported for the rest of perdure only.
"""

from ._driver import ContinueAsNewSignal, Driver, Outcome, TurnResult
from ._futures import DurableFuture, JoinFuture, SelectFuture, WorkFuture
from ._scope import Task

__all__ = [
    "ContinueAsNewSignal",
    "Driver",
    "DurableFuture",
    "JoinFuture",
    "Outcome",
    "SelectFuture",
    "Task",
    "TurnResult",
    "WorkFuture",
]
