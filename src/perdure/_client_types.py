"""Values the client's operating calls take and return (DESIGN §10)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ._state import OrchestrationState
from .providers._records import InstanceStatus

__all__ = [
    "FINISHED",
    "IfExists",
    "InstancePage",
    "StartSpec",
    "check_limit",
    "statuses_of",
    "unix_time",
]

#: What ``start_orchestration`` does when the id is taken.
IfExists = Literal["error", "ignore"]
#: The statuses of an instance that has ended (what a purge may delete).
FINISHED: tuple[InstanceStatus, ...] = ("Completed", "Failed", "Cancelled")


@dataclass(frozen=True, slots=True)
class InstancePage:
    """One page of `Client.list_instances`: newest first.

    Iterating a page, ``len`` and indexing go to its ``items``.

    Attributes:
        items: The instances of this page.
        next_cursor: Pass it as ``cursor=`` (with the same filters) for the
            next page; ``None`` when this is the last one.
    """

    items: list[OrchestrationState[Any]]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[OrchestrationState[Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> OrchestrationState[Any]:
        return self.items[index]


@dataclass(frozen=True, slots=True)
class StartSpec:
    """How `Client.raise_event` starts an instance that does not exist yet.

    Attributes:
        name: The orchestration (registered name or the decorated function).
        input: Its input (JSON-serialisable).
        version: Its version; ``None`` for the latest registered.
    """

    name: str | Callable[..., Any]
    input: Any = None
    version: str | None = None


def unix_time(value: datetime | float | None, what: str) -> float | None:
    """*value* as Unix seconds: a timezone-aware datetime or a number.

    Raises:
        ValueError: A naive datetime (ambiguous) or a non-finite number.
        TypeError: Anything else.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"{what} must be timezone-aware (e.g. datetime.now(UTC)); "
                "a naive datetime is ambiguous"
            )
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):  # type: ignore[redundant-expr]
        if not math.isfinite(value):
            raise ValueError(f"{what} must be a finite Unix time, not {value}")
        return float(value)
    raise TypeError(f"{what} must be a datetime or Unix seconds, not {value!r}")


def check_limit(value: object, what: str) -> None:
    """Raise `ValueError` unless *value* is a page size from 1 to 10,000."""
    if type(value) is not int or not 1 <= value <= 10_000:
        raise ValueError(f"{what} must be an int from 1 to 10000, not {value!r}")


def statuses_of(
    status: InstanceStatus | Sequence[InstanceStatus] | None,
) -> tuple[InstanceStatus, ...]:
    """The statuses a purge deletes: *status*, several, or every finished one."""
    if status is None:
        return FINISHED
    chosen: tuple[InstanceStatus, ...] = (
        (status,) if isinstance(status, str) else tuple(status)
    )
    wrong = [s for s in chosen if s not in FINISHED]
    if wrong or not chosen:
        raise ValueError(
            "purge_instances deletes finished instances only (Completed, Failed, "
            f"Cancelled); got {wrong or 'no status'}"
        )
    return chosen
