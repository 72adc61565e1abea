"""The client's schedule calls (issue 15, docs/schedules.md).

`Client` inherits `ClientSchedules`: a schedule is an instance of the
built-in ``perdure.schedule`` orchestration (`perdure._schedules`), so these
calls are starts, events, listings and deletes of such instances.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from ._client_queries import ClientQueries
from ._client_types import unix_time
from ._names import check_name
from ._registry import name_of
from ._schedules import (
    CONTROL_EVENT,
    PREFIX,
    SCHEDULE,
    Overlap,
    ScheduleInfo,
    schedule_spec,
)

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["ClientSchedules"]


class ClientSchedules(ClientQueries):
    """Creating, listing, pausing and deleting schedules; see `perdure.Client`."""

    def _client(self) -> Client:
        return cast("Client", self)

    async def create_schedule(
        self,
        schedule_id: str,
        orchestration: str | Callable[..., Any],
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        input: Any = None,
        overlap: Overlap = "skip",
        start_at: datetime | float | None = None,
        version: str | None = None,
    ) -> None:
        """Start *orchestration* on a timetable, durably (docs/schedules.md).

        The schedule is instance ``schedule:<schedule_id>`` of the built-in
        orchestration ``perdure.schedule``; each fire starts the target as
        ``<schedule_id>:<fire time ISO>``, so a slot never runs twice. After
        downtime it fires once for the missed slot(s), not once per slot.

        Args:
            schedule_id: The schedule's id.
            orchestration: What each fire starts (name or decorated function).
            cron: A cron expression, in UTC (needs the ``schedules`` extra).
            every: Or an interval (seconds or a `timedelta`), the first fire
                one interval after creation (or at *start_at*).
            input: The input each run gets (JSON-serialisable).
            overlap: ``"skip"`` (default): a fire is skipped while the
                previous run is still ``Running``; ``"allow"``: runs overlap.
            start_at: No fire before this time (timezone-aware datetime or
                Unix seconds).
            version: The target's version; ``None`` for the latest.

        Raises:
            InstanceExists: A schedule with this id exists.
            ValueError: Not exactly one of *cron* and *every*, a bad cron
                expression or interval, or a bad id.
            ImportError: *cron* without the ``schedules`` extra.
        """
        check_name(schedule_id, "schedule_id")
        spec = schedule_spec(
            schedule_id,
            name_of(orchestration),
            cron=cron,
            every=every,
            input=input,
            overlap=overlap,
            start_at=unix_time(start_at, "start_at"),
            version=version,
        )
        await self._client().start_orchestration(PREFIX + schedule_id, SCHEDULE, spec)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule with its state (next fire, paused, last run)."""
        found = [
            ScheduleInfo.from_state(state)
            async for state in self.iter_instances(name=SCHEDULE)
        ]
        return sorted(found, key=lambda info: info.schedule_id)

    async def pause_schedule(self, schedule_id: str) -> None:
        """Stop a schedule firing until `resume_schedule`.

        Raises:
            InstanceNotFound: Unknown schedule.
        """
        await self._client().raise_event(PREFIX + schedule_id, CONTROL_EVENT, "pause")

    async def resume_schedule(self, schedule_id: str) -> None:
        """Resume a paused schedule; slots that passed meanwhile are skipped.

        Raises:
            InstanceNotFound: Unknown schedule.
        """
        await self._client().raise_event(PREFIX + schedule_id, CONTROL_EVENT, "resume")

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; the runs it started are left alone.

        Raises:
            InstanceNotFound: Unknown schedule.
        """
        await self._client().delete_instance(PREFIX + schedule_id, force=True)
