"""perdure: durable execution for Python.

Orchestrations are plain ``async def`` functions that the engine replays
from a persisted history, so they survive crashes, restarts and
deployments; activities are ordinary functions that do the side effects.
``durable_async(ctx, coro)`` turns an inline async block into a durable task
scope that can be raced or joined with any other durable operation; the
losers' in-flight work is cancelled deterministically.

Layout: ``perdure._core`` is the pure replay kernel (no I/O); the other
private modules build the user-facing API on it; ``perdure.providers`` is
the storage contract with its SQLite and PostgreSQL backends;
``perdure.events`` holds the history event classes and ``perdure.testing``
the in-memory simulator.

Type aliases:
    InstanceStatus: ``Literal["Running", "Suspended", "Completed", "Failed",
        "Cancelled"]``, the status of an orchestration instance
        (`OrchestrationState.status`).
    ErrorCategory: ``Literal["application", "configuration",
        "infrastructure", "poison"]``, who is to blame for a failure
        (`ErrorInfo.category`).
"""

import contextlib as _contextlib

from ._activity import ActivityContext
from ._client import Client
from ._client_types import InstancePage, StartSpec
from ._context import OrchestrationContext, durable_async
from ._core._history import Event
from ._core._tasks import DurableFuture
from ._errors import (
    ActivityFailed,
    Cancelled,
    DurableTimeout,
    ErrorCategory,
    ErrorInfo,
    HandlerNotFound,
    InstanceExists,
    InstanceNotFound,
    NondeterminismError,
    NonRetryableError,
    OrchestrationFailed,
    PayloadError,
    PerdureError,
    StorageError,
    SubOrchestrationFailed,
    ValueTooLarge,
)
from ._registry import activity, orchestration
from ._retry import RetryPolicy
from ._runtime import Runtime
from ._schedules import ScheduleInfo
from ._state import OrchestrationState
from ._structured import TaskGroup
from ._sync_client import SyncClient
from .providers._base import InstanceStatus

__version__ = "0.1.0"

__all__ = [
    "ActivityContext",
    "ActivityFailed",
    "Cancelled",
    "Client",
    "DurableFuture",
    "DurableTimeout",
    "ErrorCategory",
    "ErrorInfo",
    "Event",
    "HandlerNotFound",
    "InstanceExists",
    "InstanceNotFound",
    "InstancePage",
    "InstanceStatus",
    "NonRetryableError",
    "NondeterminismError",
    "OrchestrationContext",
    "OrchestrationFailed",
    "OrchestrationState",
    "PayloadError",
    "PerdureError",
    "RetryPolicy",
    "Runtime",
    "ScheduleInfo",
    "StartSpec",
    "StorageError",
    "SubOrchestrationFailed",
    "SyncClient",
    "TaskGroup",
    "ValueTooLarge",
    "activity",
    "durable_async",
    "orchestration",
]

# Show public names as perdure.X in reprs, tracebacks and docs.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("perdure."):
        with _contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = "perdure"
del _name, _obj
