"""The one exception tree of perdure.

::

    PerdureError
    ├── ActivityFailed             an activity raised (after its retries)
    ├── NonRetryableError          raised by an activity: no further attempts
    ├── SubOrchestrationFailed     a child orchestration failed or was cancelled
    ├── OrchestrationFailed        an orchestration ended Failed (client side)
    ├── NondeterminismError        code no longer matches the stored history
    ├── InstanceExists             start_orchestration with an id in use
    ├── InstanceNotFound           an operation on an unknown instance id
    ├── PayloadError               a value cannot be encoded, decoded or is too big
    │   └── ValueTooLarge          an instance value (ctx.set_value) over a limit
    ├── HandlerNotFound            no orchestration/activity registered by that name
    └── StorageError               the provider failed or stored data is corrupt
    BaseException
    └── Cancelled                  thrown into cancelled orchestration code

`Cancelled` derives from `BaseException` so that `except Exception` in user
code cannot swallow a cancellation.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "ActivityFailed",
    "Cancelled",
    "DurableTimeout",
    "ErrorCategory",
    "ErrorInfo",
    "HandlerNotFound",
    "InstanceExists",
    "InstanceNotFound",
    "NonRetryableError",
    "NondeterminismError",
    "OrchestrationFailed",
    "PayloadError",
    "PerdureError",
    "StorageError",
    "SubOrchestrationFailed",
    "ValueTooLarge",
    "format_stack",
]

ErrorCategory = Literal["application", "configuration", "infrastructure", "poison"]
_CATEGORIES: tuple[ErrorCategory, ...] = (
    "application",
    "configuration",
    "infrastructure",
    "poison",
)


#: Longest stored stack, in characters; a longer one keeps its end (the
#: innermost frames and the exception line), marked as cut.
MAX_STACK = 16_000

# Frames in perdure's own modules at the top of a traceback (the worker or
# driver that called the user's code) are left out of stored stacks.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def format_stack(exc: BaseException) -> str | None:
    """The formatted traceback of *exc*, as `ErrorInfo.stack` stores it.

    It starts at the first frame outside perdure (the runtime that called
    the user's code is left out), includes chained exceptions (``raise ...
    from ...``) and is cut to its last `MAX_STACK` characters. Characters
    UTF-8 cannot encode (lone surrogates) are escaped, so a stack is always
    storable.

    Returns:
        ``None`` when no frame of the traceback is outside perdure (the
        failure is perdure's own, such as a timeout: its message says it
        all).
    """
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and _internal(tb):
        tb = tb.tb_next
    if tb is None:
        return None
    text = "".join(traceback.TracebackException(type(exc), exc, tb).format())
    if len(text) > MAX_STACK:
        cut = len(text) - MAX_STACK
        text = f"... ({cut} characters cut)\n" + text[cut:]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _internal(tb: TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure as stored in history and reported by `OrchestrationState.error`.

    Attributes:
        type: Name of the original exception class (e.g. ``"ValueError"``).
        message: The original exception's message.
        category: ``application`` (user code), ``configuration``
            (nondeterminism, unregistered handler), ``infrastructure``
            (storage) or ``poison`` (a message kept failing).
        stack: The formatted traceback of the original exception (see
            `format_stack`), or ``None``: not captured (histories written
            before perdure stored stacks, failures perdure raised itself).
    """

    type: str
    message: str
    category: ErrorCategory = "application"
    stack: str | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored in history (``stack`` only when set)."""
        data: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "category": self.category,
        }
        if self.stack is not None:
            data["stack"] = self.stack
        return data

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo:
        """Rebuild from `to_json` output; tolerant of a bare string.

        A stored error without ``stack`` (every history written before
        stacks were stored) has ``stack=None``.
        """
        if isinstance(data, str):
            return cls("Error", data)
        stack = data.get("stack")
        return cls(
            str(data.get("type", "Error")),
            str(data.get("message", "")),
            data.get("category", "application"),
            stack if isinstance(stack, str) else None,
        )

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        category: ErrorCategory | None = None,
        *,
        with_stack: bool = False,
    ) -> ErrorInfo:
        """Describe *exc*; perdure errors keep the info they carry.

        Args:
            exc: The exception.
            category: Overrides the category (by default the exception's
                ``category`` attribute, else ``application``).
            with_stack: Store *exc*'s traceback (`format_stack`) unless the
                info it carries already has a stack. Off by default: the
                stack of a failure that history already recorded without
                one must not appear when it is replayed.
        """
        if isinstance(exc, PerdureError) and exc.info is not None:
            info = exc.info
            if category is not None and category != info.category:
                info = replace(info, category=category)
            if with_stack and info.stack is None:
                info = replace(info, stack=format_stack(exc))
            return info
        if category is None:
            found = getattr(exc, "category", "application")
            category = found if found in _CATEGORIES else "application"
        stack = format_stack(exc) if with_stack else None
        return cls(type(exc).__name__, str(exc), category, stack)


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
        stack: The original exception's formatted traceback, or ``None``.
    """

    def __init__(
        self,
        name: str,
        message: str,
        type: str = "Error",
        category: ErrorCategory = "application",
        stack: str | None = None,
    ) -> None:
        self.name = name
        self.message = message
        self.type = type
        self.category = category
        self.stack = stack
        super().__init__(
            f"activity {name!r} failed: {type}: {message}",
            info=ErrorInfo(type, message, category, stack),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            ActivityFailed,
            (self.name, self.message, self.type, self.category, self.stack),
        )


class NonRetryableError(PerdureError):
    """Raised by an activity (it or a subclass): the failure is final.

    No further attempt runs, whatever the activity's `RetryPolicy` says;
    the orchestration gets `ActivityFailed` with this exception's class name
    and message at once. To stop retries on exception types you do not
    raise yourself, list them in ``RetryPolicy(non_retryable=...)``.
    """


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
            info=error,
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


class DurableTimeout(PerdureError, TimeoutError):
    """``ctx.timeout`` ran out of time; the work it guarded was cancelled.

    A `TimeoutError`, so ``except TimeoutError`` catches it; raised once the
    cancelled work has finished (its shielded cleanup included).
    """


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


class ValueTooLarge(PayloadError):
    """``ctx.set_value`` was given a key or value over its size limit.

    A key has at most 256 characters, one value's JSON at most 64 KiB, and
    an instance's keys and values together at most 256 KiB (UTF-8 bytes).
    Nothing is recorded: the call fails, the values stay as they were.
    """


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
