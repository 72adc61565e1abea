"""The only awaitables that yield back to the driver.

Orchestration code suspends in exactly one way: awaiting a `DurableFuture`,
whose ``__await__`` yields the future itself to the driver. The driver parks
the task on that future and resumes it (``send(None)``) once the future is
settled; ``__await__`` then returns the result or raises. Anything else that
reaches the driver (an asyncio future from ``asyncio.sleep``, a bare
``yield``) is rejected with `foreign_await_error`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["IN_ORCHESTRATION", "foreign_await_error", "self_await_error"]

#: True while the driver runs orchestration code (one task step), in that
#: thread and context only: an activity function called directly from
#: orchestration code checks it and refuses to run inline.
IN_ORCHESTRATION: ContextVar[bool] = ContextVar(
    "perdure_in_orchestration", default=False
)


def foreign_await_error(obj: Any) -> TypeError:
    """Build the error thrown into code that awaited a non-durable awaitable.

    An asyncio future (``asyncio.gather``, ``wait_for``) is cancelled first:
    the tasks it runs would otherwise go on, outside the replay, and log
    "exception was never retrieved".
    """
    what = "a bare yield (e.g. asyncio.sleep(0))" if obj is None else repr(obj)
    hint = ""
    if type(obj).__module__.startswith("asyncio"):
        cancel = getattr(obj, "cancel", None)
        if callable(cancel):
            cancel()
        if type(obj).__name__ == "_GatheringFuture":
            hint = (
                " To await several durable futures, use ctx.join(...) instead"
                " of asyncio.gather(...)."
            )
    return TypeError(
        f"orchestration code awaited {what}, which is not a perdure durable "
        "future. Orchestrations may only await what the OrchestrationContext "
        "returns (schedule_activity, schedule_timer, schedule_wait, "
        "schedule_sub_orchestration, select/join, durable_async); use "
        "ctx.schedule_timer(...) instead of asyncio.sleep(...) and do I/O in "
        "activities." + hint
    )


def self_await_error() -> RuntimeError:
    """Build the error thrown into a task that awaited its own future.

    It could never resume (asyncio: "Task cannot await on itself").
    """
    return RuntimeError("a durable task cannot await its own future")
