"""The one exception tree of perdure.

::

    PerdureError
    ├── ActivityFailed             an activity raised (after its retries)
    ├── SubOrchestrationFailed     a child orchestration failed or was cancelled
    ├── OrchestrationFailed        an orchestration ended Failed (client side)
    ├── NondeterminismError        code no longer matches the stored history
    ├── InstanceExists             start_orchestration with an id in use
    ├── InstanceNotFound           an operation on an unknown instance id
    ├── PayloadError               a value cannot be encoded, decoded or is too big
    ├── HandlerNotFound            no orchestration/activity registered by that name
    └── StorageError               the provider failed or stored data is corrupt
    BaseException
    └── Cancelled                  thrown into cancelled orchestration code

`Cancelled` derives from `BaseException` so that `except Exception` in user
code cannot swallow a cancellation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ActivityFailed",
    "Cancelled",
    "ErrorCategory",
    "ErrorInfo",
    "HandlerNotFound",
    "InstanceExists",
    "InstanceNotFound",
    "NondeterminismError",
    "OrchestrationFailed",
    "PayloadError",
    "PerdureError",
    "StorageError",
    "SubOrchestrationFailed",
]

ErrorCategory = Literal["application", "configuration", "infrastructure", "poison"]
_CATEGORIES: tuple[ErrorCategory, ...] = (
    "application",
    "configuration",
    "infrastructure",
    "poison",
)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure as stored in history and reported by `OrchestrationState.error`.

    Attributes:
        type: Name of the original exception class (e.g. ``"ValueError"``).
        message: The original exception's message.
        category: ``application`` (user code), ``configuration``
            (nondeterminism, unregistered handler), ``infrastructure``
            (storage) or ``poison`` (a message kept failing).
    """

    type: str
    message: str
    category: ErrorCategory = "application"

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored in history."""
        return {"type": self.type, "message": self.message, "category": self.category}

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo:
        """Rebuild from `to_json` output; tolerant of a bare string."""
        if isinstance(data, str):
            return cls("Error", data)
        return cls(
            str(data.get("type", "Error")),
            str(data.get("message", "")),
            data.get("category", "application"),
        )

    @classmethod
    def from_exception(
        cls, exc: BaseException, category: ErrorCategory | None = None
    ) -> ErrorInfo:
        """Describe *exc*; perdure errors keep the info they carry."""
        if isinstance(exc, PerdureError) and exc.info is not None:
            if category is None or category == exc.info.category:
                return exc.info
            return cls(exc.info.type, exc.info.message, category)
        if category is None:
            found = getattr(exc, "category", "application")
            category = found if found in _CATEGORIES else "application"
        return cls(type(exc).__name__, str(exc), category)


class PerdureError(Exception):
    """Base class of every error perdure raises on purpose."""

    category: ErrorCategory = "application"

    def __init__(self, message: str = "", *, info: ErrorInfo | None = None) -> None:
        super().__init__(message)
        self.info = info


class ActivityFailed(PerdureError):
    """An activity failed; awaiting its future raises this.

    Attributes:
        name: The activity's registered name.
        message: The original exception's message.
        type: The original exception's class name.
        category: The failure's category (``configuration`` for an
            unregistered activity, ``poison`` for one that kept crashing);
            an uncaught failure ends the instance with it.
    """

    def __init__(
        self,
        name: str,
        message: str,
        type: str = "Error",
        category: ErrorCategory = "application",
    ) -> None:
        self.name = name
        self.message = message
        self.type = type
        self.category = category
        super().__init__(
            f"activity {name!r} failed: {type}: {message}",
            info=ErrorInfo(type, message, category),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActivityFailed, (self.name, self.message, self.type, self.category))


class SubOrchestrationFailed(PerdureError):
    """A sub-orchestration ended Failed or Cancelled.

    Attributes:
        name: The child orchestration's name.
        instance_id: The child's instance id.
        error: The child's `ErrorInfo`.
    """

    def __init__(self, name: str, instance_id: str, error: ErrorInfo) -> None:
        self.name = name
        self.instance_id = instance_id
        self.error = error
        super().__init__(
            f"sub-orchestration {name!r} ({instance_id}) failed: {error}",
            info=ErrorInfo(error.type, error.message, error.category),
        )


class OrchestrationFailed(PerdureError):
    """An orchestration ended Failed; raised by client helpers that return output.

    Attributes:
        instance_id: The failed instance.
        error: Its `ErrorInfo`.
    """

    def __init__(self, instance_id: str, error: ErrorInfo) -> None:
        self.instance_id = instance_id
        self.error = error
        super().__init__(f"orchestration {instance_id!r} failed: {error}", info=error)


class NondeterminismError(PerdureError):
    """Orchestration code did not do what its stored history says it did."""

    category: ErrorCategory = "configuration"

    def __init__(self, message: str) -> None:
        super().__init__(
            message, info=ErrorInfo("NondeterminismError", message, "configuration")
        )


class InstanceExists(PerdureError):
    """An instance with this id already exists."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"instance {instance_id!r} already exists")


class InstanceNotFound(PerdureError):
    """No instance has this id."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"instance {instance_id!r} not found")


class PayloadError(PerdureError, ValueError):
    """A value could not be encoded or decoded, or is larger than allowed."""


class HandlerNotFound(PerdureError, LookupError):
    """No orchestration or activity is registered under the requested name."""

    category: ErrorCategory = "configuration"

    def __init__(self, message: str) -> None:
        super().__init__(
            message, info=ErrorInfo("HandlerNotFound", message, "configuration")
        )


class StorageError(PerdureError):
    """The storage provider failed, or stored data is corrupt."""

    category: ErrorCategory = "infrastructure"


class Cancelled(BaseException):
    """Raised inside orchestration code whose work was cancelled.

    It is thrown into a cancelled task at its pending await, and raised again
    by every later await or scheduling call in that task. Awaiting a
    cancelled future raises it too.
    """

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason
