"""The pure replay kernel: no I/O, no clock, no threads.

Internal API, re-exported for the rest of perdure only. Modules, each
importing only those above it (tests/test_structure.py checks it):

* ``_history``: the events and their vocabulary (role, work kind, match keys).
* ``_traps``: the one way code suspends; errors for foreign awaits.
* ``_tasks``: futures, tasks and the cancellation cascade; they reach the
  driver only through the ``Scheduler`` protocol.
* ``_combinators``: ``select`` and ``join`` over any durable futures.
* ``_actions``: what code emitted, and how replay checks it against history.
* ``_inbox``: external events buffered per name, and the waits they feed.
* ``_runaway``: the limits that stop code from wedging the runner.
* ``_runner``: steps coroutines, parks and unwinds tasks.
* ``_seeds``: deterministic guids and random numbers.
* ``_patches``: what ``ctx.patched`` answers, per execution.
* ``_rewind``: what a rewind of a failed execution voids and re-runs.
* ``_outcome``: how an execution ends; what a turn returns.
* ``_driver``: replays history, applies events, emits new ones.
"""

from ._combinators import JoinFuture, SelectFuture
from ._driver import ContinueAsNewSignal, Driver, Outcome, TurnResult
from ._tasks import DurableFuture, Task, WorkFuture

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
