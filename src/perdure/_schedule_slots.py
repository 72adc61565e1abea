"""Fire times of schedules: interval arithmetic and cron (``cronsim``).

Pure functions of a schedule's spec (`perdure._schedules.schedule_spec`)
and a time in Unix seconds. Interval slots are float arithmetic, the same on
every Python. Cron slots come from a third-party library, and the time zone
database behind it: an upgrade could compute other slots, so the schedule
orchestration (version 2.0.0) never computes them while it runs, only in a
turn that ends its execution (`cron_slots`, docs/schedules.md).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["cron_after", "cron_base", "cron_slots", "first_slot", "next_slot", "run_id"]


def cron_after(expr: str, after: datetime) -> datetime:
    """The first time strictly after *after* that matches cron *expr* (UTC).

    Raises:
        ValueError: A bad cron expression.
        ImportError: The ``schedules`` extra is not installed.
    """
    try:
        from cronsim import CronSim, CronSimError
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "cron schedules need the 'schedules' extra: pip install perdure[schedules]"
        ) from exc
    try:
        return next(CronSim(expr, after.astimezone(UTC)))
    except CronSimError as exc:
        raise ValueError(f"bad cron expression {expr!r}: {exc}") from None


def _at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def cron_base(spec: dict[str, Any], now: float) -> float:
    """Where the search for a new cron schedule's first slot starts.

    A slot at exactly ``start_at`` counts: the search starts just before it.
    """
    start = spec["start_at"]
    return now if start is None or start <= now else start - 1e-6


def cron_slots(expr: str, after: float, count: int) -> list[float]:
    """Up to *count* cron fire times strictly after *after*, in order.

    Fewer when the expression has no more matches (``StopIteration``).
    """
    slots: list[float] = []
    moment = _at(after)
    for _ in range(count):
        try:
            moment = cron_after(expr, moment)
        except StopIteration:  # pragma: no cover - cronsim's year limit
            break
        slots.append(moment.timestamp())
    return slots


def first_slot(spec: dict[str, Any], now: float) -> float:
    """The first fire time of a new schedule (sets the interval's anchor)."""
    start = spec["start_at"]
    if spec["every"] is not None:
        anchor = start if start is not None else now + spec["every"]
        spec["anchor"] = anchor
        return float(anchor)
    return cron_after(spec["cron"], _at(cron_base(spec, now))).timestamp()


def next_slot(spec: dict[str, Any], now: float, slot: float | None) -> float:
    """The first fire time after both *now* and *slot* (missed ones skipped)."""
    base = now if slot is None else max(now, slot)
    every = spec["every"]
    if every is not None:
        anchor = spec["anchor"]
        k = math.floor((base - anchor) / every) + 1
        return round(float(anchor + k * every), 6)
    return cron_after(spec["cron"], _at(base)).timestamp()


def run_id(schedule_id: str, slot: float) -> str:
    """The instance id of the run for one slot: the same on every replay."""
    return f"{schedule_id}:{_at(slot).isoformat()}"
