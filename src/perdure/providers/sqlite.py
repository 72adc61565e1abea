"""The SQLite provider: stdlib ``sqlite3``, the default storage.

One connection, used from one dedicated thread: every provider method makes
exactly one hop to that thread (``run_in_executor``) and does all its SQL
there, so the event loop never blocks on disk and there is no per-row
chatter between threads. Several processes may open the same file (a
crashed worker is restarted next to the survivors): writes take the write
lock up front (``BEGIN IMMEDIATE``) so that a read-then-write never fails
half-way with ``SQLITE_BUSY``, and leases are wall-clock (``time.time()``)
so that they mean the same thing in every process.

Wake-ups only reach waiters in this process, for writes made through this
object (see `_LocalWakeups`); other processes are noticed by the caller's
polling timeout.
"""

from __future__ import annotations

import asyncio
import bisect
import importlib.resources
import re
import sqlite3
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from perdure._errors import InstanceExists, InstanceNotFound, StorageError
from perdure.providers._base import (
    ActivityItem,
    ActivityResult,
    Channel,
    InstanceRecord,
    InstanceStatus,
    Message,
    NewInstance,
    OrchestrationItem,
    QueuedMessage,
    TurnCommit,
)

__all__ = ["SqliteProvider"]

_T = TypeVar("_T")

# --------------------------------------------------------------------------
# Local wake-ups
# --------------------------------------------------------------------------

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


class _LocalWakeups:
    """Per-channel wake-ups for the waiters of this process.

    A caller polls: fetch, and if there was nothing, ``wait``. A notification
    that lands between the fetch and the wait must not be lost, and the
    `Provider` API has no token to carry "what I have seen" from one call to
    the next. So the provider remembers it per asyncio task: every provider
    call records (`mark`) the wall time and each channel's generation
    counter when it starts. ``wait`` returns at once if, since the calling
    task's previous provider call, its channel was notified or one of its
    due times (a delayed message or retry written through this object)
    passed; otherwise it sleeps until a notification, the next due time or
    the timeout. The price is an occasional spurious return, which the
    contract allows.

    Asyncio objects are created only inside ``wait``, on the running loop,
    so the provider can be constructed without a loop and even be shared by
    several loops (wake-ups then cross threads with ``call_soon_threadsafe``).
    """

    def __init__(self) -> None:
        self._gens = [0, 0, 0]
        self._due: list[list[float]] = [[], [], []]
        self._waiters: list[set[asyncio.Future[bool]]] = [set(), set(), set()]
        self._marks: weakref.WeakKeyDictionary[
            asyncio.Task[Any], tuple[float, tuple[int, ...]]
        ] = weakref.WeakKeyDictionary()

    def mark(self) -> None:
        """Record what the current task has seen (call at each method start)."""
        task = asyncio.current_task()
        if task is not None:
            self._marks[task] = (time.time(), tuple(self._gens))

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


# --------------------------------------------------------------------------
# Migrations
# --------------------------------------------------------------------------

_MIGRATION_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")


def _migrations() -> list[tuple[int, str]]:
    """Return ``(version, sql)`` of the packaged migrations, in order."""
    folder = importlib.resources.files("perdure.providers").joinpath(
        "migrations", "sqlite"
    )
    found: list[tuple[int, str]] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    return found


def _statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would COMMIT first)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip()
        for part in buffer.splitlines()
    ):
        raise StorageError(f"incomplete SQL statement in migration: {buffer!r}")
    return statements


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply pending migrations in one transaction.

    ``BEGIN IMMEDIATE`` around check-and-apply makes two processes opening a
    fresh file at once safe: the second waits, then finds nothing to do.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
        for version, script in _migrations():
            if version in applied:
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------

_INSTANCE_COLUMNS = (
    "instance_id, name, version, execution_id, status, output, error,"
    " custom_status, parent_instance_id, created_at, updated_at"
)
_INSERT_INSTANCE = (
    "INSERT INTO instances (instance_id, name, version, execution_id, status,"
    " parent_instance_id, created_at, updated_at)"
    " VALUES (?, ?, ?, 1, 'Running', ?, ?, ?) ON CONFLICT (instance_id) DO NOTHING"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (instance_id, kind, body, visible_at, key)"
    " VALUES (?, ?, ?, ?, ?)"
)
_INSERT_MESSAGE_IF_INSTANCE = (
    "INSERT INTO messages (instance_id, kind, body, visible_at, key)"
    " SELECT ?1, ?2, ?3, ?4, ?5"
    " WHERE EXISTS (SELECT 1 FROM instances WHERE instance_id = ?1)"
)
# Messages in due order, skipping locked instances. CROSS JOIN pins the
# messages index as the outer loop: rows stream in ORDER BY order with no
# sort, so the fetch stops after the first max_items instances.
_READY_INSTANCES = (
    "SELECT m.instance_id FROM messages AS m CROSS JOIN instances AS i"
    " ON i.instance_id = m.instance_id"
    " WHERE m.visible_at <= ?1 AND (i.lock_token IS NULL OR i.locked_until < ?1)"
    " ORDER BY m.visible_at, m.id"
)
_LOCK_INSTANCE = (
    "UPDATE instances SET lock_token = ?, locked_until = ?, attempt = attempt + 1"
    f" WHERE instance_id = ? RETURNING {_INSTANCE_COLUMNS}, history_len, attempt"
)
_VISIBLE_MESSAGES = (
    "SELECT id, kind, body FROM messages"
    " WHERE instance_id = ? AND visible_at <= ? ORDER BY id"
)
# The turn's guard: lock held, and the history it was computed against is
# the stored one (same execution and length, or a move to a newer execution
# from scratch). When it matches no row, nothing of the turn is written.
_COMMIT_INSTANCE = (
    "UPDATE instances SET execution_id = :execution_id,"
    " name = coalesce(:name, name), version = coalesce(:version, version),"
    " status = :status, output = :output, error = :error,"
    " custom_status = coalesce(:custom_status, custom_status),"
    " updated_at = :now, history_len = :history_len,"
    " lock_token = NULL, locked_until = NULL, attempt = 0"
    " WHERE instance_id = :instance_id AND lock_token = :lock_token AND ("
    "  (execution_id = :execution_id AND history_len = :history_start)"
    "  OR (execution_id < :execution_id AND :history_start = 0))"
)
_INSERT_EVENT = (
    "INSERT INTO history (instance_id, execution_id, event_id, data)"
    " VALUES (?, ?, ?, ?)"
)
_INSERT_ACTIVITY = (
    "INSERT OR IGNORE INTO activities"
    " (instance_id, execution_id, event_id, name, body, visible_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# A fetched item's visible_at becomes its lease end (see 0001_initial.sql).
_LOCK_ACTIVITIES = (
    "UPDATE activities SET lock_token = lower(hex(randomblob(16))),"
    " visible_at = ?1, attempt = attempt + 1"
    " WHERE id IN (SELECT id FROM activities WHERE visible_at <= ?2"
    "  ORDER BY visible_at, id LIMIT ?3)"
    " RETURNING id, instance_id, execution_id, event_id, name, body,"
    " lock_token, attempt"
)


def _record(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        version=row[2],
        execution_id=row[3],
        status=cast(InstanceStatus, row[4]),
        output=row[5],
        error=row[6],
        custom_status=row[7],
        parent_instance_id=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def _message_row(
    instance_id: str, message: Message, now: float
) -> tuple[str, str, str, float, str | None]:
    visible_at = now if message.visible_at is None else message.visible_at
    return (instance_id, message.kind, message.body, visible_at, message.key)


def _check_events(turn: TurnCommit) -> None:
    expected = range(turn.history_start + 1, turn.history_start + 1 + len(turn.events))
    if [event_id for event_id, _ in turn.events] != list(expected):
        raise ValueError(
            f"turn for {turn.instance_id!r}: event ids must be consecutive from"
            f" {turn.history_start + 1}, got {[e for e, _ in turn.events]}"
        )


# --------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------


class SqliteProvider:
    """A `Provider` storing everything in one SQLite file (or in memory).

    Args:
        path: Database file, or ``":memory:"`` for a private in-memory
            database (gone on `close`; not shared with other objects).

    Call `open` before anything else and `close` at the end. Errors from
    SQLite surface as `StorageError`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._wakeups = _LocalWakeups()

    def __repr__(self) -> str:
        return f"SqliteProvider({self.path!r})"

    # --- plumbing -------------------------------------------------------

    async def _call(self, fn: Callable[[], _T]) -> _T:
        """Run *fn* on the connection's thread (the only hop of a method)."""
        executor = self._executor
        if executor is None:
            raise StorageError(f"{self!r} is not open; await its open() first")
        self._wakeups.mark()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.path!r}: {exc}") from exc

    async def _transaction(self, fn: Callable[[sqlite3.Connection, float], _T]) -> _T:
        """Run *fn* in a write transaction on the connection's thread."""
        return await self._call(lambda: self._write(fn))

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"{self!r} is not open; await its open() first")
        return self._conn

    def _write(self, fn: Callable[[sqlite3.Connection, float], _T]) -> _T:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # "now" is read once the write lock is held, so leases compare
            # consistently with the order in which writers commit.
            result = fn(conn, time.time())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        """Connect and apply pending migrations (idempotent)."""
        if self._executor is not None:
            return
        # Set before the first await: a concurrent open() returns at once and
        # its calls queue behind the migration on the single worker thread.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perdure-sqlite")
        self._executor = executor
        try:
            await self._call(self._open_sync)
        except BaseException:
            self._executor = None
            executor.shutdown(wait=False)
            raise

    def _open_sync(self) -> None:
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=5.0, cached_statements=256
        )
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Close the connection and stop its thread (idempotent)."""
        executor = self._executor
        if executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- client verbs ---------------------------------------------------

    async def create_instance(self, new: NewInstance) -> None:
        """Create an instance row (status Running) and enqueue its start message.

        Raises:
            InstanceExists: The id is taken; nothing is written.
        """

        def tx(conn: sqlite3.Connection, now: float) -> None:
            created = conn.execute(
                _INSERT_INSTANCE,
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
            conn.execute(_INSERT_MESSAGE, _message_row(new.instance_id, new.start, now))

        await self._transaction(tx)
        self._wakeups.due("orchestrations", new.start.visible_at)
        self._wakeups.notify("orchestrations", "instances")

    async def enqueue(self, instance_id: str, message: Message) -> None:
        """Append a message to an instance's queue.

        Raises:
            InstanceNotFound: No such instance; nothing is written.
        """

        def run() -> int:
            row = _message_row(instance_id, message, time.time())
            # One statement, so autocommit makes it atomic on its own.
            return self._db().execute(_INSERT_MESSAGE_IF_INSTANCE, row).rowcount

        if await self._call(run) != 1:
            raise InstanceNotFound(instance_id)
        self._wakeups.due("orchestrations", message.visible_at)
        self._wakeups.notify("orchestrations")

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """Return the instance row, or ``None``."""

        def run() -> InstanceRecord | None:
            row = (
                self._db()
                .execute(
                    f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?",
                    (instance_id,),
                )
                .fetchone()
            )
            return None if row is None else _record(row)

        return await self._call(run)

    async def list_instances(
        self, *, status: InstanceStatus | None = None, limit: int = 100
    ) -> list[InstanceRecord]:
        """Return instances, newest first, optionally filtered by status."""
        where = "" if status is None else "WHERE status = ?"
        params: tuple[Any, ...] = (limit,) if status is None else (status, limit)
        sql = (
            f"SELECT {_INSTANCE_COLUMNS} FROM instances {where}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        )
        rows = await self._call(lambda: self._db().execute(sql, params).fetchall())
        return [_record(row) for row in rows]

    async def read_history(
        self, instance_id: str, execution_id: int | None = None
    ) -> list[str]:
        """Return the JSON text of each event, in event-id order.

        ``execution_id=None`` reads the instance's current execution; an
        unknown instance has an empty history.
        """
        sql = (
            "SELECT data FROM history WHERE instance_id = ?1 AND execution_id ="
            " coalesce(?2, (SELECT execution_id FROM instances WHERE instance_id = ?1))"
            " ORDER BY event_id"
        )
        params = (instance_id, execution_id)
        rows = await self._call(lambda: self._db().execute(sql, params).fetchall())
        return [row[0] for row in rows]

    async def delete_instance(self, instance_id: str) -> bool:
        """Delete an instance with its history, messages and activity work.

        Returns:
            ``False`` if there was no such instance.
        """

        def tx(conn: sqlite3.Connection, now: float) -> bool:
            key = (instance_id,)
            conn.execute("DELETE FROM history WHERE instance_id = ?", key)
            conn.execute("DELETE FROM messages WHERE instance_id = ?", key)
            conn.execute("DELETE FROM activities WHERE instance_id = ?", key)
            deleted = conn.execute("DELETE FROM instances WHERE instance_id = ?", key)
            return deleted.rowcount == 1

        found = await self._transaction(tx)
        if found:
            self._wakeups.notify("instances")
        return found

    # --- orchestration dispatcher ---------------------------------------

    async def fetch_orchestrations(
        self, max_items: int, lock_timeout: float
    ) -> list[OrchestrationItem]:
        """Lock up to *max_items* instances that have visible messages.

        Instances are taken in the order of their oldest due message
        (``visible_at``, then arrival), so a busy instance cannot starve the
        others; each comes with all its visible messages in arrival order.
        """
        if max_items <= 0:
            return []

        def tx(conn: sqlite3.Connection, now: float) -> list[OrchestrationItem]:
            picked: dict[str, None] = {}
            cursor = conn.execute(_READY_INSTANCES, (now,))
            try:
                for (instance_id,) in cursor:
                    picked[instance_id] = None
                    if len(picked) >= max_items:
                        break
            finally:
                cursor.close()
            items: list[OrchestrationItem] = []
            for instance_id in picked:
                token = uuid.uuid4().hex
                row = conn.execute(
                    _LOCK_INSTANCE, (token, now + lock_timeout, instance_id)
                ).fetchall()[0]
                messages = conn.execute(_VISIBLE_MESSAGES, (instance_id, now))
                items.append(
                    OrchestrationItem(
                        instance=_record(row),
                        messages=[
                            QueuedMessage(id=m[0], kind=m[1], body=m[2])
                            for m in messages
                        ],
                        history_len=row[11],
                        lock_token=token,
                        attempt=row[12],
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
            _check_events(turn)
        if not turns:
            return []

        def tx(conn: sqlite3.Connection, now: float) -> list[bool]:
            results: list[bool] = []
            for turn in turns:
                conn.execute("SAVEPOINT turn")
                try:
                    ok = self._apply_turn(conn, now, turn)
                except sqlite3.IntegrityError:
                    # Stored rows contradict the turn (e.g. events already
                    # there): reject this turn alone, as for a stale lock.
                    ok = False
                if not ok:
                    conn.execute("ROLLBACK TO turn")
                conn.execute("RELEASE turn")
                results.append(ok)
            return results

        results = await self._transaction(tx)
        committed = [turn for turn, ok in zip(turns, results, strict=True) if ok]
        if committed:
            for turn in committed:
                for out in turn.outbound:
                    self._wakeups.due("orchestrations", out.message.visible_at)
                for child in turn.new_instances:
                    self._wakeups.due("orchestrations", child.start.visible_at)
                for work in turn.activities:
                    self._wakeups.due("activities", work.visible_at)
            # Always "orchestrations": releasing a lock can make messages that
            # arrived during the turn fetchable again.
            self._wakeups.notify("orchestrations", "instances")
            if any(turn.activities for turn in committed):
                self._wakeups.notify("activities")
        return results

    def _apply_turn(self, conn: sqlite3.Connection, now: float, turn: TurnCommit) -> bool:
        guard = conn.execute(
            _COMMIT_INSTANCE,
            {
                "instance_id": turn.instance_id,
                "lock_token": turn.lock_token,
                "execution_id": turn.execution_id,
                "history_start": turn.history_start,
                "history_len": turn.history_start + len(turn.events),
                "name": turn.name,
                "version": turn.version,
                "status": turn.status,
                "output": turn.output,
                "error": turn.error,
                "custom_status": turn.custom_status,
                "now": now,
            },
        )
        if guard.rowcount != 1:
            return False
        instance_id, execution_id = turn.instance_id, turn.execution_id
        conn.executemany(
            _INSERT_EVENT,
            [(instance_id, execution_id, eid, data) for eid, data in turn.events],
        )
        conn.executemany(
            "DELETE FROM messages WHERE id = ? AND instance_id = ?",
            [(message_id, instance_id) for message_id in turn.consumed],
        )
        # Inserts before deletes: work scheduled and cancelled (or a timer
        # set and dropped) within the same turn must end up gone.
        conn.executemany(
            _INSERT_ACTIVITY,
            [
                (
                    w.instance_id,
                    w.execution_id,
                    w.event_id,
                    w.name,
                    w.body,
                    now if w.visible_at is None else w.visible_at,
                )
                for w in turn.activities
            ],
        )
        conn.executemany(
            "DELETE FROM activities"
            " WHERE instance_id = ? AND execution_id = ? AND event_id = ?",
            [(r.instance_id, r.execution_id, r.event_id) for r in turn.cancel_activities],
        )
        # New instances before outbound, so a message to a child created by
        # this very turn is delivered.
        for child in turn.new_instances:
            self._create_child(conn, now, child)
        conn.executemany(
            _INSERT_MESSAGE_IF_INSTANCE,
            [_message_row(o.instance_id, o.message, now) for o in turn.outbound],
        )
        conn.executemany(
            "DELETE FROM messages WHERE instance_id = ? AND key = ?",
            turn.drop_messages,
        )
        return True

    @staticmethod
    def _create_child(conn: sqlite3.Connection, now: float, new: NewInstance) -> None:
        created = conn.execute(
            _INSERT_INSTANCE,
            (new.instance_id, new.name, new.version, new.parent_instance_id, now, now),
        )
        if created.rowcount == 1:
            conn.execute(_INSERT_MESSAGE, _message_row(new.instance_id, new.start, now))
        elif new.on_conflict is not None and new.on_conflict_target is not None:
            conn.execute(
                _INSERT_MESSAGE_IF_INSTANCE,
                _message_row(new.on_conflict_target, new.on_conflict, now),
            )

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
                self._wakeups.due("orchestrations", time.time() + delay)
            else:
                self._wakeups.notify("orchestrations")

    async def renew_orchestration_lock(
        self, instance_id: str, lock_token: str, lock_timeout: float
    ) -> bool:
        """Extend a held instance lock. ``False`` if it is no longer held."""

        def run() -> bool:
            renewed = self._db().execute(
                "UPDATE instances SET locked_until = ?"
                " WHERE instance_id = ? AND lock_token = ?",
                (time.time() + lock_timeout, instance_id, lock_token),
            )
            return renewed.rowcount == 1

        return await self._call(run)

    # --- activity worker ------------------------------------------------

    async def fetch_activities(
        self, max_items: int, lock_timeout: float
    ) -> list[ActivityItem]:
        """Lock up to *max_items* visible activity work items, oldest first."""
        if max_items <= 0:
            return []

        def run() -> list[Any]:
            now = time.time()
            return (
                self._db()
                .execute(_LOCK_ACTIVITIES, (now + lock_timeout, now, max_items))
                .fetchall()
            )

        rows = await self._call(run)
        rows.sort(key=lambda row: row[0])  # RETURNING order is unspecified
        return [
            ActivityItem(
                id=row[0],
                instance_id=row[1],
                execution_id=row[2],
                event_id=row[3],
                name=row[4],
                body=row[5],
                lock_token=row[6],
                attempt=row[7],
            )
            for row in rows
        ]

    async def complete_activities(self, results: Sequence[ActivityResult]) -> None:
        """Delete each held item and enqueue its completion, atomically per item.

        A result whose item is gone or held under another token (cancelled,
        or its lease expired and another worker took it) is dropped.
        """
        if not results:
            return

        def tx(conn: sqlite3.Connection, now: float) -> int:
            delivered = 0
            for result in results:
                held = conn.execute(
                    "DELETE FROM activities WHERE id = ? AND lock_token = ?",
                    (result.id, result.lock_token),
                )
                if held.rowcount == 1:
                    conn.execute(
                        _INSERT_MESSAGE_IF_INSTANCE,
                        _message_row(result.instance_id, result.message, now),
                    )
                    delivered += 1
            return delivered

        if await self._transaction(tx):
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
                (time.time() + max(delay, 0.0), id, lock_token),
            )
            return released.rowcount == 1

        if await self._call(run):
            if delay > 0:
                self._wakeups.due("activities", time.time() + delay)
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
                    "UPDATE activities SET visible_at = ? WHERE id = ? AND lock_token = ?",
                    (now + lock_timeout, item_id, token),
                )
                if renewed.rowcount != 1:
                    lost.append(item_id)
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
