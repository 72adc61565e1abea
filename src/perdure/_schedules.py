"""Schedules: a built-in orchestration that starts another one on a timetable.

A schedule is an ordinary durable instance, ``schedule:<schedule_id>``,
running the orchestration ``perdure.schedule`` that every `Runtime`
registers. It loops: take the next fire time, wait on a durable timer
(raced with a control event: pause, resume), then start the target detached
as ``<schedule_id>:<fire time ISO>``. That id is the exactly-once guard: a
fire replayed after a crash starts nothing new. Every `FIRES_PER_EXECUTION`
fires it continues as new, so its history stays small. Missed fires after
downtime give one catch-up fire (the slot that was due), never one per
missed slot. Cron expressions need the ``schedules`` extra (``cronsim``).

Version 2.0.0 (`VERSION`) never computes a cron slot in a turn that could
be replayed: slots come from the execution's input, and new ones are
computed in a turn that continues as new (`_refill`). Version 1.0.0
(`LEGACY_VERSION`) computed them in the loop; it stays registered so its
running executions replay, and moves to 2.0.0 at its next continue-as-new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from . import _schedule_slots
from ._registry import activity, orchestration
from ._retry import seconds
from ._schedule_slots import first_slot, next_slot, run_id

if TYPE_CHECKING:
    from ._activity_context import ActivityContext
    from ._context import OrchestrationContext
    from ._state import OrchestrationState
    from .providers._base import Provider

__all__ = [
    "CONTROL_EVENT",
    "FIRES_PER_EXECUTION",
    "IS_RUNNING",
    "LEGACY_VERSION",
    "PREFIX",
    "SCHEDULE",
    "SLOTS_PER_REFILL",
    "VERSION",
    "Overlap",
    "ScheduleInfo",
    "first_slot",
    "is_running_activity",
    "next_slot",
    "run_id",
    "schedule_orchestration",
    "schedule_orchestration_v1",
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
#: Cron slots computed at a time (the next fire and the queue after it).
SLOTS_PER_REFILL = FIRES_PER_EXECUTION
#: The built-in orchestration's version: cron slots recorded in its input.
VERSION = "2.0.0"
#: Its first version, which computed cron slots in the loop (replay only).
LEGACY_VERSION = "1.0.0"

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
        _schedule_slots.cron_after(
            cron, datetime.now(UTC)
        )  # raises on a bad expression
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
        "slots": None,
        "paused": False,
        "last_run": None,
        "fires": 0,
        "skipped": 0,
    }


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


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
            "next_fire": None if nxt is None else _iso(nxt),
            "last_run": spec["last_run"],
            "fires": spec["fires"],
            "skipped": spec["skipped"],
        }
    )


@orchestration(name=SCHEDULE, version=LEGACY_VERSION)
async def schedule_orchestration_v1(ctx: OrchestrationContext, spec: Any) -> None:
    """Version 1.0.0: cron slots computed in the loop; kept for its histories.

    Executions that started as 1.0.0 replay on this code until their next
    continue-as-new, which starts them on `schedule_orchestration`.
    """
    await _schedule(ctx, dict(spec), recorded=False)


@orchestration(name=SCHEDULE, version=VERSION)
async def schedule_orchestration(ctx: OrchestrationContext, spec: Any) -> None:
    """Start ``spec["orchestration"]`` on its timetable until deleted."""
    await _schedule(ctx, dict(spec), recorded=True)


async def _schedule(
    ctx: OrchestrationContext, spec: dict[str, Any], *, recorded: bool
) -> None:
    # recorded: cron slots come from the execution's input (spec["next"]
    # and the queue spec["slots"]); when they run out, they are computed in
    # a turn that ends the execution (`_refill`), so that replay never
    # computes one. Interval slots are plain arithmetic either way.
    if spec["next"] is None:
        now = ctx.utc_now().timestamp()
        if recorded and spec["cron"] is not None:
            _refill(ctx, spec, _schedule_slots.cron_base(spec, now))
            return  # the expression has no more matches
        spec["next"] = first_slot(spec, now)
    fired = 0
    while True:
        _publish(ctx, spec)
        if spec["paused"]:
            command = await ctx.wait_for_event(CONTROL_EVENT)
            if command == "resume":
                spec["paused"] = False
                # Slots that passed while paused are not caught up.
                if not _advance(ctx, spec, None, recorded=recorded):
                    return
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
        if not _advance(ctx, spec, slot, recorded=recorded):
            return
        fired += 1
        if fired >= FIRES_PER_EXECUTION:
            _publish(ctx, spec)
            ctx.continue_as_new(spec)


def _advance(
    ctx: OrchestrationContext,
    spec: dict[str, Any],
    slot: float | None,
    *,
    recorded: bool,
) -> bool:
    """Set ``spec["next"]``: the first slot after now and *slot*.

    False when a cron expression has no more matches (the schedule ends).
    """
    now = ctx.utc_now().timestamp()
    if not recorded or spec["cron"] is None:
        spec["next"] = next_slot(spec, now, slot)
        return True
    base = now if slot is None else max(now, slot)
    queue = [t for t in spec.get("slots") or () if t > base]
    if not queue:
        _refill(ctx, spec, base)
        return False
    spec["next"], spec["slots"] = queue[0], queue[1:]
    return True


def _refill(ctx: OrchestrationContext, spec: dict[str, Any], base: float) -> None:
    """Compute the next cron slots after *base*, then continue as new.

    The slots go into the new execution's input, which history records:
    its replays read them, whatever cron library runs then. This turn
    computes them but is never replayed, since it ends the execution.
    Returns only if the expression has no match left (cronsim stops at a
    year limit): the schedule then ends.
    """
    found = _schedule_slots.cron_slots(spec["cron"], base, SLOTS_PER_REFILL)
    if not found:  # pragma: no cover - needs a date past cronsim's limit
        spec["next"], spec["slots"] = None, []
        _publish(ctx, spec)
        return
    spec["next"], spec["slots"] = found[0], found[1:]
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
