"""Building blocks a provider composes: wake-ups, row mapping, migrations.

Everything here is backend-neutral and used by both bundled providers; a
third backend may use any of it (see docs/providers.md):

- `LocalWakeups`: the in-process half of the `Provider.wait` contract.
  Call `LocalWakeups.mark` at the start of every provider method,
  `LocalWakeups.notify` / `LocalWakeups.due` / `LocalWakeups.committed`
  after each write, and delegate `Provider.wait` to `LocalWakeups.wait`.
  A backend shared by several processes adds its own cross-process signal
  (PostgreSQL: ``LISTEN``/``NOTIFY``) by calling `LocalWakeups.notify`.
- `check_events`: the consecutive-event-id rule of `Provider.commit_turns`.
- `INSTANCE_COLUMNS`, `instance_record`, `activity_items`: one column list
  and one mapping for instance rows and fetched activity rows, read by name.
- `load_migrations`: the packaged ``migrations/<dialect>/NNNN_name.sql``.
"""

from __future__ import annotations

import asyncio
import bisect
import importlib.resources
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from perdure.providers._base import (
    ActivityItem,
    Channel,
    InstanceRecord,
    InstanceStatus,
    TurnCommit,
)

__all__ = [
    "INSTANCE_COLUMNS",
    "LocalWakeups",
    "activity_items",
    "check_events",
    "instance_record",
    "load_migrations",
    "unclaimed_work",
]

# --- rows -----------------------------------------------------------------

# The instance columns, in the order `instance_record` reads them.
INSTANCE_COLUMNS = (
    "instance_id, name, version, execution_id, status, output, error,"
    " custom_status, parent_instance_id, created_at, updated_at"
)


def instance_record(row: Sequence[Any]) -> InstanceRecord:
    """Build a record from a row that starts with `INSTANCE_COLUMNS`.

    Extra columns after them (a fetch's ``history_len``, ``attempt``, ...)
    are ignored.
    """
    (
        instance_id,
        name,
        version,
        execution_id,
        status,
        output,
        error,
        custom_status,
        parent_instance_id,
        created_at,
        updated_at,
    ) = row[:11]
    return InstanceRecord(
        instance_id=instance_id,
        name=name,
        version=version,
        execution_id=execution_id,
        status=cast(InstanceStatus, status),
        output=output,
        error=error,
        custom_status=custom_status,
        parent_instance_id=parent_instance_id,
        created_at=created_at,
        updated_at=updated_at,
    )


def activity_items(rows: Iterable[Sequence[Any]]) -> list[ActivityItem]:
    """Map fetched activity rows, oldest (lowest id) first.

    Each row is ``(id, instance_id, execution_id, event_id, name, body,
    lock_token, attempt)``, optionally followed by ``heartbeat_details``
    and ``session``; ``RETURNING`` order is unspecified, so rows are sorted
    by id.
    """
    items = [
        ActivityItem(
            id=row[0],
            instance_id=row[1],
            execution_id=row[2],
            event_id=row[3],
            name=row[4],
            body=row[5],
            lock_token=row[6],
            attempt=row[7],
            heartbeat_details=row[8] if len(row) > 8 else None,
            session=row[9] if len(row) > 9 else None,
        )
        for row in rows
    ]
    items.sort(key=lambda item: item.id)
    return items


# --- turns and migrations ---------------------------------------------------


def check_events(turn: TurnCommit) -> None:
    """Reject event ids that are not consecutive from ``history_start + 1``.

    Raises:
        ValueError: A runtime bug; nothing of the batch may be written.
    """
    expected = range(turn.history_start + 1, turn.history_start + 1 + len(turn.events))
    if [event_id for event_id, _ in turn.events] != list(expected):
        raise ValueError(
            f"turn for {turn.instance_id!r}: event ids must be consecutive from"
            f" {turn.history_start + 1}, got {[e for e, _ in turn.events]}"
        )


_MIGRATION_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")


def load_migrations(dialect: str) -> list[tuple[int, str]]:
    """Return ``(version, sql)`` of ``migrations/<dialect>/*.sql``, in order."""
    # One name per joinpath: zip-backed Traversables of 3.11 take only one.
    folder = (
        importlib.resources.files("perdure.providers")
        .joinpath("migrations")
        .joinpath(dialect)
    )
    found: list[tuple[int, str]] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    return found


# --- wake-ups -------------------------------------------------------------

_CHANNELS: dict[Channel, int] = {"orchestrations": 0, "activities": 1, "instances": 2}
# Past due times are kept this long so that a task whose previous provider
# call predates one still sees it; older ones are pruned (such a task then
# merely sleeps until its own timeout).
_DUE_MEMORY = 300.0
# Sleep this much past a due time so that the refetch finds the item visible.
_DUE_SLACK = 0.002


def _resolve(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


def unclaimed_work(turn: TurnCommit) -> bool:
    """Whether *turn* enqueues work some worker must fetch (not claimed)."""
    return any(w.claim is None or w.visible_at is not None for w in turn.activities)


class LocalWakeups:
    """Per-channel wake-ups for the waiters of this process.

    This is the documented way to meet the "no wake-up is lost" rule of
    `Provider.wait` (see "Wake-ups" in `perdure.providers._base`). A caller
    polls: fetch, and if there was nothing, ``wait``. A notification that
    lands between the fetch and the wait must not be lost, so the helper
    keeps a *cursor* per asyncio task: `mark`, called at the start of every
    provider method, records the wall time and each channel's generation
    counter. ``wait`` returns at once if, since the calling task's previous
    provider call, its channel was notified (`notify`) or one of its due
    times (`due`: a delayed message or retry written through this object)
    passed; otherwise it sleeps until a notification, the next due time or
    the timeout. The price is an occasional spurious return, which the
    contract allows.

    How a backend composes it:

    - every verb starts with ``self._wakeups.mark()``;
    - after a write commits, ``notify`` the channels it gave work to and
      ``due`` each delayed ``visible_at`` it stored (`committed` does both
      for a batch of turns);
    - ``wait`` is ``await self._wakeups.wait(channel, timeout)``;
    - writes by other processes reach it through ``notify`` from whatever
      cross-process signal the backend has (or only through the timeout).

    Asyncio objects are created only inside ``wait``, on the running loop,
    so the provider can be constructed without a loop and used from one loop
    after another; a waiter on another thread's loop is woken with
    ``call_soon_threadsafe``.
    """

    def __init__(self) -> None:
        self._gens = [0, 0, 0]
        self._due: list[list[float]] = [[], [], []]
        self._waiters: list[set[asyncio.Future[bool]]] = [set(), set(), set()]
        # Per task; an entry is dropped when its task ends. (A plain dict:
        # a WeakKeyDictionary makes a new weak reference on every store,
        # and this runs on every provider call.)
        self._marks: dict[asyncio.Task[Any], tuple[float, tuple[int, ...]]] = {}

    def mark(self) -> None:
        """Record what the current task has seen (call at each method start)."""
        task = asyncio.current_task()
        if task is not None:
            marks = self._marks
            if task not in marks:
                task.add_done_callback(self._forget)
            marks[task] = (time.time(), tuple(self._gens))

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._marks.pop(task, None)

    def notify(self, *channels: Channel) -> None:
        """Wake every waiter of *channels* and bump their generations."""
        for channel in channels:
            i = _CHANNELS[channel]
            self._gens[i] += 1
            self._wake(i, True)

    def due(self, channel: Channel, at: float | None) -> None:
        """Remember that work on *channel* becomes visible at *at*."""
        now = time.time()
        if at is None or at <= now:
            return  # visible already: the write's notify covers it
        i = _CHANNELS[channel]
        due = self._due[i]
        del due[: bisect.bisect_left(due, now - _DUE_MEMORY)]
        bisect.insort(due, at)
        if due[bisect.bisect_right(due, now)] == at:
            self._wake(i, False)  # sleepers re-arm for the earlier due time

    def committed(
        self, turns: Sequence[TurnCommit], prewoken: Sequence[Channel] = ()
    ) -> None:
        """Wake local waiters for what committed *turns* made available.

        *prewoken* channels were notified before the write and their
        fetches ordered after it (see the SQLite provider's grouped
        writes): notifying them again would only cost an empty fetch.
        """
        if not turns:
            return
        finished = released = False
        for turn in turns:
            released = released or turn.lock_token is not None
            for out in turn.outbound:
                self.due("orchestrations", out.message.visible_at)
            for child in turn.new_instances:
                self.due("orchestrations", child.start.visible_at)
            for work in turn.activities:
                if work.claim is None or work.visible_at is not None:
                    self.due("activities", work.visible_at)  # else: ours
            finished = finished or turn.status != "Running"
        # "orchestrations" whenever a lock was released: messages that
        # arrived during the turn may be fetchable now (a fused turn, run
        # without the lock, releases none). "instances" only when a
        # status changed: waiting clients need not wake for every turn.
        if released:
            self.notify("orchestrations")
        if finished:
            self.notify("instances")
        if "activities" not in prewoken and any(map(unclaimed_work, turns)):
            self.notify("activities")

    async def wait(self, channel: Channel, timeout: float) -> None:
        """Sleep until *channel* may have work; see the class docstring."""
        i = _CHANNELS[channel]
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        mark = self._marks.get(task) if task is not None else None
        try:
            if mark is not None and self._pending(i, mark):
                return
            deadline = loop.time() + max(timeout, 0.0)
            while (remaining := deadline - loop.time()) > 0:
                now = time.time()
                due = self._due[i]
                j = bisect.bisect_right(due, now)
                if j < len(due):
                    remaining = min(remaining, due[j] - now + _DUE_SLACK)
                fut: asyncio.Future[bool] = loop.create_future()
                self._waiters[i].add(fut)
                # The timer ends the wait (deadline or due time reached); a
                # False result only means "re-arm for an earlier due time".
                handle = loop.call_later(remaining, _resolve, fut, True)
                try:
                    if await fut:
                        return
                finally:
                    handle.cancel()
                    self._waiters[i].discard(fut)
        finally:
            self.mark()

    def _pending(self, i: int, mark: tuple[float, tuple[int, ...]]) -> bool:
        since, gens = mark
        if self._gens[i] != gens[i]:
            return True
        due = self._due[i]
        j = bisect.bisect_right(due, since)
        return j < len(due) and due[j] <= time.time()

    def _wake(self, i: int, value: bool) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for fut in list(self._waiters[i]):
            loop = fut.get_loop()
            if loop is running:
                _resolve(fut, value)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut, value)
