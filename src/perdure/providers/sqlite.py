"""The SQLite provider: stdlib ``sqlite3``, the default storage.

The domain verbs, as SQL; how the connection is used (inline, writes of
one loop tick grouped into one transaction) lives in
`perdure.providers._sqlite_conn`, and how a turn or an activity completion
is written in `perdure.providers._sqlite_turns`. Leases are wall-clock
(the provider's ``clock``, `time.time` by default) so that they mean the
same thing in every process sharing the file.

Wake-ups only reach waiters in this process, for writes made through this
object (see `LocalWakeups`); other processes are noticed by the caller's
polling timeout.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from perdure._errors import InstanceExists, InstanceNotFound
from perdure.providers._base import (
    ActivityHeartbeat,
    ActivityItem,
    ActivityResult,
    Channel,
    Handlers,
    InstanceRecord,
    Message,
    NewInstance,
    OrchestrationItem,
    QueuedMessage,
    TurnCommit,
)
from perdure.providers._sqlite_activities import SqliteActivityRouting
from perdure.providers._sqlite_conn import Durability
from perdure.providers._sqlite_instances import SqliteInstances
from perdure.providers._sqlite_routing import takes
from perdure.providers._sqlite_schema import (
    INSERT_INSTANCE,
    INSERT_MESSAGE,
    INSERT_MESSAGE_IF_INSTANCE,
    LOCK_ACTIVITIES,
    LOCK_INSTANCE,
    READY_INSTANCES,
    VISIBLE_MESSAGES,
    message_row,
)
from perdure.providers._sqlite_turns import (
    ITEM_ERRORS,
    ack,
    ack_isolated,
    apply_isolated,
    apply_turn,
)
from perdure.providers.helpers import (
    INSTANCE_COLUMNS,
    activity_items,
    check_events,
    instance_record,
    unclaimed_work,
)

__all__ = ["SqliteProvider"]


# An instance and its sub-orchestrations, recursively (UNION: a cycle of
# parent links, possible after ids are re-used, ends the recursion).
class SqliteProvider(SqliteInstances, SqliteActivityRouting):
    """A `Provider` storing everything in one SQLite file (or in memory).

    Args:
        path: Database file, or ``":memory:"`` for a private in-memory
            database (gone on `close`; not shared with other objects).
        clock: Returns the current Unix time (default `time.time`); every
            time the provider stamps (enqueue, leases, delays) comes from it.
        durability: ``"power-loss"`` (default): a commit is on disk (fsynced)
            before it is acknowledged, so a result a client saw survives a
            power cut. ``"process-crash"``: faster (no fsync per commit); a
            killed process loses nothing, but a power loss or OS crash can
            undo the last commits. In a URL: ``?durability=process-crash``.

    Call `open` before anything else and `close` at the end. Errors from
    SQLite surface as `StorageError`.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] | None = None,
        durability: Durability = "power-loss",
    ) -> None:
        super().__init__(path, clock=clock, durability=durability)

    def __repr__(self) -> str:
        return f"SqliteProvider({self.path!r})"

    # --- client verbs ---------------------------------------------------

    async def create_instance(self, new: NewInstance) -> None:
        """Create an instance row (status Running) and enqueue its start message.

        Raises:
            InstanceExists: The id is taken; nothing is written.
        """

        def tx(conn: sqlite3.Connection, now: float) -> None:
            created = conn.execute(
                INSERT_INSTANCE,
                (
                    new.instance_id,
                    new.name,
                    new.version,
                    new.parent_instance_id,
                    now,
                    now,
                ),
            )
            if created.rowcount != 1:
                raise InstanceExists(new.instance_id)
            conn.execute(INSERT_MESSAGE, message_row(new.instance_id, new.start, now))

        await self._transaction(tx, ("orchestrations",))
        self._wakeups.due("orchestrations", new.start.visible_at)
        self._wakeups.notify("orchestrations", "instances")

    async def enqueue(self, instance_id: str, message: Message) -> None:
        """Append a message to an instance's queue.

        Raises:
            InstanceNotFound: No such instance; nothing is written.
        """

        def tx(conn: sqlite3.Connection, now: float) -> int:
            row = message_row(instance_id, message, now)
            return conn.execute(INSERT_MESSAGE_IF_INSTANCE, row).rowcount

        if await self._transaction(tx, ("orchestrations",)) != 1:
            raise InstanceNotFound(instance_id)
        self._wakeups.due("orchestrations", message.visible_at)
        self._wakeups.notify("orchestrations")

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """Return the instance row, or ``None``."""

        def run() -> InstanceRecord | None:
            row = (
                self._db()
                .execute(
                    f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?",
                    (instance_id,),
                )
                .fetchone()
            )
            return None if row is None else instance_record(row)

        return await self._call(run)

    # --- orchestration dispatcher ---------------------------------------

    async def fetch_orchestrations(
        self, max_items: int, lock_timeout: float, handlers: Handlers | None = None
    ) -> list[OrchestrationItem]:
        """Lock up to *max_items* instances that have visible messages.

        Instances are taken in the order of their oldest due message
        (``visible_at``, then arrival), so a busy instance cannot starve the
        others; each comes with all its visible messages in arrival order.
        """
        if max_items <= 0:
            return []
        mine = takes(handlers)

        def tx(conn: sqlite3.Connection, now: float) -> list[OrchestrationItem]:
            picked: dict[str, None] = {}
            cursor = conn.execute(READY_INSTANCES, (now,))
            try:
                for instance_id, status, name, version in cursor:
                    if not mine(status, name, version):
                        continue
                    picked[instance_id] = None
                    if len(picked) >= max_items:
                        break
            finally:
                cursor.close()
            items: list[OrchestrationItem] = []
            for instance_id in picked:
                token = uuid.uuid4().hex
                # LOCK_INSTANCE returns INSTANCE_COLUMNS, history_len, attempt.
                row = conn.execute(
                    LOCK_INSTANCE, (token, now + lock_timeout, instance_id)
                ).fetchall()[0]
                *_, history_len, attempt = row
                messages = conn.execute(VISIBLE_MESSAGES, (instance_id, now))
                items.append(
                    OrchestrationItem(
                        instance=instance_record(row),
                        messages=[
                            QueuedMessage(
                                id=id_, kind=kind, body=body, occurred_at=occurred_at
                            )
                            for id_, kind, body, occurred_at in messages
                        ],
                        history_len=history_len,
                        lock_token=token,
                        attempt=attempt,
                    )
                )
            return items

        return await self._transaction(tx)

    async def commit_turns(self, turns: Sequence[TurnCommit]) -> list[bool]:
        """Commit turns; each one atomically. Returns per-turn success.

        The whole batch is one SQLite transaction (one fsync); each turn runs
        inside a savepoint, so a rejected turn writes nothing while the
        others commit. A turn is rejected when its lock is no longer held,
        when ``history_start`` is not the stored history length, or when its
        execution is older than the stored one.

        Raises:
            ValueError: A turn's event ids are not consecutive from
                ``history_start + 1`` (a runtime bug); nothing is written.
        """
        for turn in turns:
            check_events(turn)
        if not turns:
            return []

        def tx(conn: sqlite3.Connection, now: float) -> list[bool]:
            # Fast path: a rejected turn fails its guard before writing
            # anything, so no per-turn savepoint is needed. Only when one
            # turn raises (stored rows contradict it, or the driver refuses
            # one of its values) is the batch redone with a savepoint per
            # turn, so that the error rejects that turn alone.
            conn.execute("SAVEPOINT batch")
            try:
                results = [apply_turn(conn, now, turn) for turn in turns]
            except ITEM_ERRORS:
                conn.execute("ROLLBACK TO batch")
                results = [apply_isolated(conn, now, turn) for turn in turns]
            conn.execute("RELEASE batch")
            return results

        # A fused turn (no lock) wakes the dispatcher only if it sends.
        wake: tuple[Channel, ...] = ()
        if any(
            t.lock_token is not None or t.outbound or t.new_instances for t in turns
        ):
            wake = ("orchestrations",)
        if any(map(unclaimed_work, turns)):
            wake = (*wake, "activities")
        results = await self._transaction(tx, wake)
        committed = [turn for turn, ok in zip(turns, results, strict=True) if ok]
        self._wakeups.committed(committed, prewoken=wake)
        if not all(results):
            self._wakeups.notify("orchestrations")  # released locks
        return results

    async def abandon_orchestration(
        self, instance_id: str, lock_token: str, delay: float = 0.0
    ) -> None:
        """Release the lock without committing; messages become visible after *delay*.

        The attempt counter is kept (it counts fetches since the last
        commit), so an instance that keeps being abandoned shows up as poison.
        """

        def tx(conn: sqlite3.Connection, now: float) -> bool:
            released = conn.execute(
                "UPDATE instances SET lock_token = NULL, locked_until = NULL"
                " WHERE instance_id = ? AND lock_token = ?",
                (instance_id, lock_token),
            )
            if released.rowcount != 1:
                return False
            if delay > 0:
                conn.execute(
                    "UPDATE messages SET visible_at = ?"
                    " WHERE instance_id = ? AND visible_at <= ?",
                    (now + delay, instance_id, now),
                )
            return True

        if await self._transaction(tx):
            if delay > 0:
                self._wakeups.due("orchestrations", self._clock() + delay)
            else:
                self._wakeups.notify("orchestrations")

    # --- activity worker ------------------------------------------------

    async def fetch_activities(
        self, max_items: int, lock_timeout: float
    ) -> list[ActivityItem]:
        """Lock up to *max_items* visible activity work items, oldest first."""
        if max_items <= 0:
            return []

        def tx(conn: sqlite3.Connection, now: float) -> list[Any]:
            return conn.execute(
                LOCK_ACTIVITIES, (now + lock_timeout, now, max_items)
            ).fetchall()

        rows = await self._transaction(tx)
        return activity_items(rows)

    async def complete_activities(self, results: Sequence[ActivityResult]) -> None:
        """Delete each held item and enqueue its completion, atomically per item.

        A result whose item is gone or held under another token (cancelled,
        or its lease expired and another worker took it) is dropped. A
        result the driver cannot write is replaced (see
        `perdure.providers._unwritable.replacement`); the others are
        written as if it were not there.
        """
        if not results:
            return

        def tx(conn: sqlite3.Connection, now: float) -> int:
            conn.execute("SAVEPOINT acks")
            try:
                delivered = sum(ack(conn, now, r) for r in results)
            except ITEM_ERRORS:
                conn.execute("ROLLBACK TO acks")
                delivered = sum(ack_isolated(conn, now, r) for r in results)
            conn.execute("RELEASE acks")
            return delivered

        if await self._transaction(tx, ("orchestrations",)):
            for result in results:
                self._wakeups.due("orchestrations", result.message.visible_at)
            self._wakeups.notify("orchestrations")

    async def abandon_activity(
        self, id: int, lock_token: str, delay: float = 0.0
    ) -> None:
        """Release an item; it becomes visible again after *delay* (retries).

        Its attempt counter is kept and grows on the next fetch.
        """

        def run() -> bool:
            released = self._db().execute(
                "UPDATE activities SET lock_token = NULL, visible_at = ?"
                " WHERE id = ? AND lock_token = ?",
                (self._clock() + max(delay, 0.0), id, lock_token),
            )
            return released.rowcount == 1

        if await self._call(run):
            if delay > 0:
                self._wakeups.due("activities", self._clock() + delay)
            else:
                self._wakeups.notify("activities")

    async def renew_activity_locks(
        self, leases: Sequence[tuple[int, str]], lock_timeout: float
    ) -> list[int]:
        """Extend held leases; return ids no longer held (deleted or taken)."""
        if not leases:
            return []

        def tx(conn: sqlite3.Connection, now: float) -> list[int]:
            lost: list[int] = []
            for item_id, token in leases:
                renewed = conn.execute(
                    "UPDATE activities SET visible_at = ?"
                    " WHERE id = ? AND lock_token = ?",
                    (now + lock_timeout, item_id, token),
                )
                if renewed.rowcount != 1:
                    lost.append(item_id)
            return lost

        return await self._transaction(tx)

    async def save_activity_heartbeats(
        self, beats: Sequence[ActivityHeartbeat]
    ) -> list[int]:
        """Store each held item's latest heartbeat details (see `SavesHeartbeats`).

        Returns:
            Ids of the items not held under the beat's token.
        """
        if not beats:
            return []

        def tx(conn: sqlite3.Connection, now: float) -> list[int]:
            lost: list[int] = []
            for beat in beats:
                saved = conn.execute(
                    "UPDATE activities SET heartbeat_details = ?"
                    " WHERE id = ? AND lock_token = ?",
                    (beat.details, beat.id, beat.lock_token),
                )
                if saved.rowcount != 1:
                    lost.append(beat.id)
            return lost

        return await self._transaction(tx)

    # --- wake-ups -------------------------------------------------------

    async def wait(self, channel: Channel, timeout: float) -> None:
        """Return when *channel* may have new work, or after *timeout* seconds.

        Wakes on writes made through this object, and when a delayed
        message or retry written through it becomes due. It returns at once
        if such a wake-up happened since the calling task's previous call to
        this provider, so one landing between a fetch and the wait is never
        lost. Writes by other processes are only seen after *timeout*.
        """
        await self._wakeups.wait(channel, timeout)
