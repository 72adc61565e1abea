"""Retry policy for activities.

Retries run in the activity worker: a failed attempt is put back on the
queue with a backoff delay, so only the final outcome reaches the
orchestration's history (one ``ActivityScheduled`` and one completion,
however many attempts it took).

``non_retryable`` is stored by name (the policy travels as JSON with the
work item, to whichever runtime runs it): a class as its qualified name
(``module.QualName``; builtins by their bare name), a string as given. The
worker matches the names against the raised exception's class *and its
bases* (its MRO), so listing a base class stops its subclasses too; nothing
is imported to match. A bare name (no dot) matches a class of that name in
any module; a dotted name matches only that module's class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ._errors import NonRetryableError

__all__ = ["RetryPolicy", "exception_names", "seconds"]


def seconds(value: float | timedelta, what: str = "duration") -> float:
    """Normalise a duration given as seconds or `timedelta` to seconds.

    Raises:
        TypeError: Not a number of seconds or a `timedelta`.
        ValueError: NaN or infinite: a timer or lease that can never be
            due (or always is) is refused before anything is stored.
    """
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be seconds (float) or a timedelta, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How an activity is retried when it raises.

    Args:
        max_attempts: Total attempts, the first included (>= 1).
        initial_interval: Delay before the second attempt, in seconds.
        backoff: Multiplier applied to the delay after each attempt.
        max_interval: Upper bound of the delay, in seconds.
        timeout: Total time budget for all attempts, in seconds; once
            spent, no further attempt starts and the last failure stands.
        non_retryable: Exception classes (or their names, ``"ValueError"``
            or ``"myapp.errors.Declined"``) whose failures are final: no
            further attempt. Subclasses match too. Raising
            `perdure.NonRetryableError` (or a subclass) has the same effect
            without listing anything.
    """

    max_attempts: int = 3
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0
    timeout: float | None = None
    non_retryable: tuple[type[BaseException] | str, ...] = ()

    def __post_init__(self) -> None:
        entries: object = self.non_retryable
        if isinstance(entries, str | type) or not isinstance(entries, tuple | list):
            raise TypeError(
                "RetryPolicy.non_retryable must be a tuple of exception classes"
                f" or names, got {entries!r}"
            )
        for entry in entries:
            if not (
                (isinstance(entry, str) and entry.strip())
                or (isinstance(entry, type) and issubclass(entry, BaseException))
            ):
                raise TypeError(
                    "RetryPolicy.non_retryable entries must be exception classes"
                    f" or non-empty names, got {entry!r}"
                )
        object.__setattr__(self, "non_retryable", tuple(entries))
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise TypeError(
                f"RetryPolicy.max_attempts must be an int, got {attempts!r}"
            )
        if attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        for name in ("initial_interval", "max_interval"):
            seconds(getattr(self, name), f"RetryPolicy.{name}")
        backoff: object = self.backoff  # annotated float, but user-supplied
        if not isinstance(backoff, int | float) or not math.isfinite(backoff):
            raise ValueError(
                f"RetryPolicy.backoff must be a finite number, got {self.backoff!r}"
            )
        if self.timeout is not None:
            seconds(self.timeout, "RetryPolicy.timeout")
        if self.initial_interval < 0 or self.max_interval < 0:
            raise ValueError("RetryPolicy intervals must be >= 0")
        if self.backoff < 1:
            raise ValueError("RetryPolicy.backoff must be >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number *attempt* (1-based)."""
        try:
            raw = self.initial_interval * self.backoff ** max(attempt - 1, 0)
        except OverflowError:  # a long retry series: the cap applies
            return float(self.max_interval)
        return float(min(raw, self.max_interval))

    def retries(self, exc: BaseException) -> bool:
        """False if *exc* is non-retryable under this policy.

        That is a `perdure.NonRetryableError` (or subclass), or an instance
        of a class listed in ``non_retryable`` (or of a subclass of one).
        """
        if isinstance(exc, NonRetryableError):
            return False
        names = exception_names(type(exc))
        return not any(_name(entry) in names for entry in self.non_retryable)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored with the activity work item."""
        data: dict[str, Any] = {
            "max_attempts": self.max_attempts,
            "initial_interval": self.initial_interval,
            "backoff": self.backoff,
            "max_interval": self.max_interval,
            "timeout": self.timeout,
        }
        if self.non_retryable:
            data["non_retryable"] = [_name(entry) for entry in self.non_retryable]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryPolicy:
        """Rebuild from `to_json` output (``non_retryable`` as names)."""
        fields = dict(data)
        fields["non_retryable"] = tuple(fields.get("non_retryable") or ())
        return cls(**fields)


def _name(entry: type[BaseException] | str) -> str:
    """How ``non_retryable`` stores *entry* (see the module docstring)."""
    if isinstance(entry, str):
        return entry.strip()
    if entry.__module__ == "builtins":
        return entry.__qualname__
    return f"{entry.__module__}.{entry.__qualname__}"


def exception_names(cls: type[BaseException]) -> set[str]:
    """Every name a ``non_retryable`` entry may give *cls* or one of its bases.

    For each class of the MRO: its qualified name (see `RetryPolicy`), its
    ``__qualname__`` and its ``__name__``.
    """
    names: set[str] = set()
    for base in cls.__mro__:
        names.update((_name(base), base.__qualname__, base.__name__))
    return names
