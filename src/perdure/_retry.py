"""Retry policy for activities.

Retries run in the activity worker: a failed attempt is put back on the
queue with a backoff delay, so only the final outcome reaches the
orchestration's history (one ``ActivityScheduled`` and one completion,
however many attempts it took).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

__all__ = ["RetryPolicy", "seconds"]


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
    """

    max_attempts: int = 3
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0
    timeout: float | None = None

    def __post_init__(self) -> None:
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

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored with the activity work item."""
        return {
            "max_attempts": self.max_attempts,
            "initial_interval": self.initial_interval,
            "backoff": self.backoff,
            "max_interval": self.max_interval,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryPolicy:
        """Rebuild from `to_json` output."""
        return cls(**data)
