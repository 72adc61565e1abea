"""Guards against orchestration code that would wedge the driver (DESIGN §8).

No orchestration code may make the driver loop for ever or overflow its
stack. These situations need a guard, because the driver cannot interrupt
a coroutine; it only regains control when the coroutine yields to it:

* A cancelled task that keeps catching `Cancelled` and awaiting again,
  whether it was parked or running when it was cancelled: after
  `MAX_UNWIND` re-throws its coroutine is closed (`Runner.force_close`).
  Its durable calls raise `Cancelled`, then `RunawayTask`, then (see
  `Runner.refusal`) return a future that is already cancelled, so even a
  bare ``except:`` loop reaches an await.
* A coroutine being closed (that forced close, or the garbage collector
  closing a discarded driver's suspended task) whose bare ``except:`` keeps
  swallowing the `GeneratorExit` its durable calls raise: after
  `MAX_CLOSE_REFUSALS` refusals its awaits *suspend* instead, so
  ``close()`` gives up on it (RuntimeError "coroutine ignored
  GeneratorExit") and the driver drops it.
* A task that keeps catching the error thrown into it for awaiting what
  it may not (its own future, ``asyncio.sleep``): after `MAX_BAD_AWAITS`
  in a row it is left suspended, as if parked for ever.
* Deeply nested tasks and combinators: settling a future runs its
  combinators' callbacks recursively, and a task starts its children
  synchronously. The order of those callbacks is part of the history
  (cancel events), so the recursion is kept, and the recursion limit is
  raised while the driver runs (`deep_recursion`).

The limits live here; `_runner.Runner` applies them.

Code that loops without ever awaiting (``while True: pass``, or a bare
``except:`` around a scheduling call it never awaits) is beyond any guard.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType

from .._errors import ErrorInfo
from ._tasks import Task

__all__ = [
    "MAX_BAD_AWAITS",
    "MAX_CANCELLED_CALLS",
    "MAX_CLOSE_REFUSALS",
    "MAX_UNWIND",
    "TOO_DEEP",
    "RunawayTask",
    "deep_recursion",
    "running_task",
]

# A cancelled coroutine that keeps catching Cancelled and awaiting again is
# closed after this many re-throws, so it cannot stall the driver.
MAX_UNWIND = 100
# A cancelled task whose code keeps calling the context after this many
# refusals is stopped outright (RunawayTask); if it swallows that too, its
# calls return futures that are already cancelled, so its next await
# suspends and the MAX_UNWIND bound applies.
MAX_CANCELLED_CALLS = 1000
# Durable calls a coroutine being closed may have refused (GeneratorExit)
# before its awaits suspend instead, making close() give up on it.
MAX_CLOSE_REFUSALS = 100
# Errors thrown in a row into a task for awaiting what it may not (its own
# future, a non-durable awaitable) before it is left suspended instead.
MAX_BAD_AWAITS = 100
# Recursion limit while the driver runs: enough for thousands of nested
# tasks or combinators, far below what would exhaust the C stack.
DEEP_RECURSION_LIMIT = 20_000
# How an instance fails if even that is not enough (instead of the turn
# failing until its message is poison).
TOO_DEEP = ErrorInfo(
    "RecursionError",
    "orchestration nesting is too deep: tasks or select/join combinators "
    "nested beyond what the driver can settle",
)


class RunawayTask(BaseException):
    """Stops a cancelled task that keeps swallowing `Cancelled` in a loop."""


def running_task(root: Task) -> Task | None:
    """The first task, depth-first, whose coroutine is executing right now.

    Iterative, so that deep trees cannot overflow the stack of whatever
    (the garbage collector, say) is closing a coroutine.
    """
    stack = [root]
    while stack:
        task = stack.pop()
        if getattr(task.coro, "cr_running", False):
            return task
        stack.extend(c for c in reversed(task.children) if isinstance(c, Task))
    return None


class _DeepRecursion:
    """Raises the recursion limit while any driver entry point runs.

    Counted, so nested or concurrent (threads) entries restore the limit
    only when the last one leaves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                self._saved = sys.getrecursionlimit()
                if self._saved < DEEP_RECURSION_LIMIT:
                    sys.setrecursionlimit(DEEP_RECURSION_LIMIT)
            self._users += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                sys.setrecursionlimit(self._saved)


deep_recursion = _DeepRecursion()
