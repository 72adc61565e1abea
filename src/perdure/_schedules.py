"""Schedules: a built-in orchestration that starts another one on a timetable.

A schedule is an ordinary durable instance, ``schedule:<schedule_id>``,
running the orchestration ``perdure.schedule`` that every `Runtime`
registers. It loops: compute the next fire time from ``ctx.utc_now()``, wait
on a durable timer (raced with a control event: pause, resume), then start
the target detached as ``<schedule_id>:<fire time ISO>``. That id is the
exactly-once guard: a fire replayed after a crash starts nothing new. Every
`FIRES_PER_EXECUTION` fires it continues as new, so its history stays small.
Missed fires after downtime give one catch-up fire (the slot that was due),
never one per missed slot. Cron expressions need the ``schedules`` extra
(``cronsim``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ._registry import activity, orchestration
from ._retry import seconds

if TYPE_CHECKING:
    from ._activity_context import ActivityContext
    from ._context import OrchestrationContext
    from ._state import OrchestrationState
    from .providers._base import Provider

__all__ = [
    "CONTROL_EVENT",
    "FIRES_PER_EXECUTION",
    "IS_RUNNING",
    "PREFIX",
    "SCHEDULE",
    "Overlap",
    "ScheduleInfo",
    "first_slot",
    "is_running_activity",
    "next_slot",
    "run_id",
    "schedule_orchestration",
    "schedule_spec",
]

#: The built-in orchestration's registered name.
SCHEDULE = "perdure.schedule"
#: The built-in activity that tells whether a run is still ``Running``.
IS_RUNNING = "perdure.schedule.is_running"
#: The external event that pauses and resumes a schedule.
CONTROL_EVENT = "perdure.schedule.control"
#: Instance id prefix of schedules.
PREFIX = "schedule:"
#: Fires per execution before the schedule continues as new.
FIRES_PER_EXECUTION = 50

#: What a fire does while the previous run is still running.
Overlap = Literal["skip", "allow"]


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One schedule, as `Client.list_schedules` reports it.

    Attributes:
        schedule_id: The schedule's id.
        orchestration: The orchestration it starts (``None`` until a
            runtime has picked the schedule up).
        cron: Its cron expression (UTC), or ``None``.
        every: Its interval in seconds, or ``None``.
        overlap: ``"skip"`` or ``"allow"``.
        paused: Whether it is paused.
        next_fire: When it fires next (``None`` while paused or unknown).
        last_run: Instance id of the last run it started, if any.
        fires: How many runs it has started.
        skipped: How many fires it skipped (overlap ``"skip"``).
        status: The schedule instance's status (``Running`` while alive).
    """

    schedule_id: str
    orchestration: str | None
    cron: str | None
    every: float | None
    overlap: Overlap
    paused: bool
    next_fire: datetime | None
    last_run: str | None
    fires: int
    skipped: int
    status: str

    @classmethod
    def from_state(cls, state: OrchestrationState[Any]) -> ScheduleInfo:
        """Read the custom status a schedule instance publishes.

        Until a runtime has run the schedule's first turn, only its id and
        status are known (*orchestration* is ``None``).
        """
        s = state.custom_status if isinstance(state.custom_status, dict) else {}
        nxt = s.get("next_fire")
        return cls(
            schedule_id=state.instance_id.removeprefix(PREFIX),
            orchestration=s.get("orchestration"),
            cron=s.get("cron"),
            every=s.get("every"),
            overlap=s.get("overlap", "skip"),
            paused=bool(s.get("paused")),
            next_fire=None if nxt is None else datetime.fromisoformat(nxt),
            last_run=s.get("last_run"),
            fires=int(s.get("fires", 0)),
            skipped=int(s.get("skipped", 0)),
            status=state.status,
        )


def schedule_spec(
    schedule_id: str,
    orchestration: str,
    *,
    cron: str | None,
    every: float | timedelta | None,
    input: Any,
    overlap: str,
    start_at: float | None,
    version: str | None,
) -> dict[str, Any]:
    """The schedule instance's input, checked.

    Raises:
        ValueError: Not exactly one of *cron* and *every*, a bad cron
            expression, a non-positive *every*, or an unknown *overlap*.
        ImportError: *cron* without the ``schedules`` extra.
    """
    if (cron is None) == (every is None):
        raise ValueError("give exactly one of cron= and every=")
    if overlap not in ("skip", "allow"):
        raise ValueError(f"overlap must be 'skip' or 'allow', not {overlap!r}")
    interval = None
    if every is not None:
        interval = seconds(every, "every")
        if not interval > 0:
            raise ValueError(f"every must be > 0, not {every!r}")
    if cron is not None:
        _cron_after(cron, datetime.now(UTC))  # raises on a bad expression
    return {
        "schedule_id": schedule_id,
        "orchestration": orchestration,
        "version": version,
        "cron": cron,
        "every": interval,
        "input": input,
        "overlap": overlap,
        "start_at": start_at,
        "anchor": None,
        "next": None,
        "paused": False,
        "last_run": None,
        "fires": 0,
        "skipped": 0,
    }


def _cron_after(expr: str, after: datetime) -> datetime:
    """The first time strictly after *after* that matches cron *expr* (UTC)."""
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


def first_slot(spec: dict[str, Any], now: float) -> float:
    """The first fire time of a new schedule (sets the interval's anchor)."""
    start = spec["start_at"]
    if spec["every"] is not None:
        anchor = start if start is not None else now + spec["every"]
        spec["anchor"] = anchor
        return float(anchor)
    # A cron slot at exactly start_at counts: search from just before it.
    base = now if start is None or start <= now else start - 1e-6
    return _cron_after(spec["cron"], _at(base)).timestamp()


def next_slot(spec: dict[str, Any], now: float, slot: float | None) -> float:
    """The first fire time after both *now* and *slot* (missed ones skipped)."""
    base = now if slot is None else max(now, slot)
    every = spec["every"]
    if every is not None:
        anchor = spec["anchor"]
        k = math.floor((base - anchor) / every) + 1
        return round(float(anchor + k * every), 6)
    return _cron_after(spec["cron"], _at(base)).timestamp()


def run_id(schedule_id: str, slot: float) -> str:
    """The instance id of the run for one slot: the same on every replay."""
    return f"{schedule_id}:{_at(slot).isoformat()}"


def _publish(ctx: OrchestrationContext, spec: dict[str, Any]) -> None:
    nxt = None if spec["paused"] else spec["next"]
    ctx.set_custom_status(
        {
            "schedule_id": spec["schedule_id"],
            "orchestration": spec["orchestration"],
            "cron": spec["cron"],
            "every": spec["every"],
            "overlap": spec["overlap"],
            "paused": spec["paused"],
            "next_fire": None if nxt is None else _at(nxt).isoformat(),
            "last_run": spec["last_run"],
            "fires": spec["fires"],
            "skipped": spec["skipped"],
        }
    )


@orchestration(name=SCHEDULE)
async def schedule_orchestration(ctx: OrchestrationContext, spec: Any) -> None:
    """Start ``spec["orchestration"]`` on its timetable until deleted."""
    spec = dict(spec)
    if spec["next"] is None:
        spec["next"] = first_slot(spec, ctx.utc_now().timestamp())
    fired = 0
    while True:
        _publish(ctx, spec)
        if spec["paused"]:
            command = await ctx.wait_for_event(CONTROL_EVENT)
            if command == "resume":
                spec["paused"] = False
                # Slots that passed while paused are not caught up.
                spec["next"] = next_slot(spec, ctx.utc_now().timestamp(), None)
            continue
        delay = spec["next"] - ctx.utc_now().timestamp()
        timer = ctx.schedule_timer(max(delay, 0.0))
        control = ctx.wait_for_event(CONTROL_EVENT)
        index, command = await ctx.select(timer, control)
        if index == 1:
            spec["paused"] = spec["paused"] or command == "pause"
            continue
        slot = spec["next"]
        await _fire(ctx, spec, slot)
        spec["next"] = next_slot(spec, ctx.utc_now().timestamp(), slot)
        fired += 1
        if fired >= FIRES_PER_EXECUTION:
            _publish(ctx, spec)
            ctx.continue_as_new(spec)


async def _fire(ctx: OrchestrationContext, spec: dict[str, Any], slot: float) -> None:
    last = spec["last_run"]
    if spec["overlap"] == "skip" and last is not None:
        running = await ctx.schedule_activity(IS_RUNNING, last)
        if running:
            spec["skipped"] += 1
            return
    run = run_id(spec["schedule_id"], slot)
    ctx.start_orchestration(
        spec["orchestration"], run, spec["input"], version=spec["version"]
    )
    spec["last_run"] = run
    spec["fires"] += 1


def is_running_activity(provider: Provider) -> Any:
    """The built-in activity `IS_RUNNING`, reading *provider* (a runtime's)."""

    @activity(name=IS_RUNNING)
    async def is_running(ctx: ActivityContext, instance_id: str) -> bool:
        record = await provider.get_instance(instance_id)
        return record is not None and record.status == "Running"

    return is_running
