"""The PostgreSQL provider: psycopg 3 (async) with a connection pool.

Several runtimes (processes, machines) may share one database: queues are
fetched with ``FOR UPDATE SKIP LOCKED`` and held by expiring leases, so each
instance turn and each activity attempt runs in one runtime at a time and the
work of a crashed runtime is taken over once its leases expire. Wake-ups
cross processes with ``LISTEN``/``NOTIFY`` on channels qualified by schema.
An instance sticks for a moment to the runtime that ran its last turn (see
``affinity``), so consecutive turns usually hit that runtime's instance
cache instead of replaying the history in another process.

Every hot-path verb (fetch and commit of turns, fetch and completion of
activities) is one SQL statement, hence one round trip, whatever the batch
size; see `perdure.providers._pg_sql` for the statements and for how time is
handled (the database clock, except timer fire times).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from perdure._errors import InstanceExists, InstanceNotFound, StorageError
from perdure.providers import _pg_raw as raw
from perdure.providers._base import (
    Channel,
    Handlers,
    Message,
    NewInstance,
    OrchestrationItem,
    TurnCommit,
)
from perdure.providers._pg_activities import PgActivities
from perdure.providers._pg_batch import commit
from perdure.providers._pg_conn import Outage, PgSettings, is_transient, storage_error
from perdure.providers._pg_fetch import fetch_orchestrations
from perdure.providers._pg_instances import PgInstances, handler_params
from perdure.providers._pg_kept import KeptConnection
from perdure.providers._pg_listen import Listener
from perdure.providers._pg_members import Membership
from perdure.providers._pg_once import PgOnce
from perdure.providers._pg_open import AdaptivePoll, open_sessions
from perdure.providers._pg_routing import PgActivityRouting
from perdure.providers._pg_schema import channel_names, describe, quote_ident, split_url
from perdure.providers._pg_sql import (
    NOW,
    SPARE_FOR,
    PgSql,
    create_params,
    message_params,
)
from perdure.providers._pg_vacuum import QueueVacuum
from perdure.providers.helpers import LocalWakeups, check_events

__all__ = ["PostgresProvider"]

Conn = psycopg.AsyncConnection[Any]


class PostgresProvider(PgActivities, PgActivityRouting, PgOnce, PgInstances):
    """A `Provider` storing everything in one schema of a PostgreSQL database.

    Args:
        url: ``postgresql://user:password@host:port/dbname?...``; a
            ``schema=NAME`` query parameter selects the schema (it is
            removed before connecting).
        schema: The schema, as an alternative to the URL parameter
            (default ``"perdure"``). It is created on `open` if missing;
            give each application sharing a database its own.
        min_size: Connections the pool keeps open.
        max_size: Most connections the pool opens (plus one for LISTEN).
        affinity: Seconds an instance is left to the runtime that ran its
            last turn (it has the instance's state cached, while any other
            runtime would have to replay its history) before another runtime
            may take it; also how much later a crashed or stopped runtime's
            instances are picked up. ``0`` turns affinity off.
        statement_timeout: Seconds one statement may run on the server
            (PostgreSQL's ``statement_timeout``; ``0``: no limit), so a hung
            query costs its caller a retry, never the runtime.
        lock_wait_timeout: Seconds a statement may wait for a row lock
            (PostgreSQL's ``lock_timeout``; ``0``: no limit).
        pooler: ``None`` (default) detects a pooler (PgBouncer) between
            us and PostgreSQL; ``True``/``False`` says. Behind one the
            provider keeps no session state: no server-side prepared
            statements, and the limits above are enforced on the client.
        listen_url: A direct URL to the same database for the ``LISTEN``
            connection behind a pooler; without one, work written by other
            processes is found by polling every 0.02 to 0.2 s.
        role: Names this process's part in ``application_name``
            (``perdure-<role>-<host>-<pid>``).

    Call `open` before anything else and `close` at the end; `open`
    applies pending migrations, safely when several processes start at
    once. Database errors surface as `StorageError`; connection-level ones
    (the server went away, is in recovery, or is a read-only standby) as
    its subclass `TransientStorageError`, which callers may retry.

    Attributes:
        settings: The session settings in force (`PgSettings`; whether a
            pooler is in between is known once `open` returned).

    Raises:
        ValueError: The URL and *schema* disagree, or the schema name is
            invalid.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        affinity: float = 1.0,
        statement_timeout: float = 30.0,
        lock_wait_timeout: float = 10.0,
        pooler: bool | None = None,
        listen_url: str | None = None,
        role: str = "runtime",
    ) -> None:
        self._conninfo, self.schema = split_url(url, schema)
        self._where = describe(self._conninfo)
        self.settings = PgSettings(
            role=role,
            statement_timeout=max(float(statement_timeout), 0.0),
            lock_timeout=max(float(lock_wait_timeout), 0.0),
            pooled=bool(pooler),
        )
        self._pooler = pooler
        # Same database, so the same schema; libpq rejects the parameter.
        self._listen_url = listen_url and split_url(listen_url, self.schema)[0]
        self._poll: AdaptivePoll | None = None
        self._outage = Outage(self._where)
        self._min_size = min_size
        self._max_size = max(max_size, min_size)
        self._affinity = max(float(affinity), 0.0)
        self._sql = PgSql.for_schema(self.schema)
        self._channels = channel_names(self.schema)
        # Payload of our NOTIFYs: our own listener skips them (local waiters
        # were woken directly), other provider objects act on them.
        self._origin = uuid.uuid4().hex
        self._wake_params: dict[str, Any] = {
            "origin": self._origin,
            "ch_orch": self._channels["orchestrations"],
            "ch_act": self._channels["activities"],
            "ch_inst": self._channels["instances"],
            # Database time until which this object's own dispatcher
            # (worker) has room: its commits then wake no other runtime for
            # work it will take itself (see _pg_wake.wake). Refreshed by each
            # fetch; 0 for a client, or once the loop stops fetching.
            "spare_orch": 0.0,
            "spare_act": 0.0,
        }
        self._wakeups = LocalWakeups()
        self._limit_rows: set[str] = set()  # activity_limits rows created
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._kept = KeptConnection(keep=self._max_size >= 3)  # for commits
        self._listener: Listener | None = None
        self._opening: asyncio.Task[None] | None = None
        # Vacuums the queue tables when dead rows pile up (_pg_vacuum);
        # started by the first fetch: runtimes run it, clients do not.
        self._vacuum = QueueVacuum(self.schema, self._connection)
        # Announces a fetching runtime, so that starts are homed here.
        self._members = Membership(
            quote_ident(self.schema), self._origin, self._connection, NOW
        )
        # Database clock minus this machine's (see clock()); measured at
        # open and refreshed by every fetch that returns work.
        self._skew = 0.0

    def __repr__(self) -> str:
        return f"PostgresProvider({self._where!r}, schema={self.schema!r})"

    # --- plumbing -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self, kept: bool = False) -> AsyncIterator[Conn]:
        """A pooled connection (autocommit); database errors become StorageError.

        Connection-level errors become `TransientStorageError` (retryable)
        and the connection is dropped from the pool. *kept*: the one kept
        for commits (`_pg_kept`), when free.
        """
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self!r} is not open; await its open() first")
        self._wakeups.mark()
        sent = False
        try:
            async with (
                asyncio.timeout(self.settings.client_timeout),
                self._kept.use(pool) if kept else pool.connection() as conn,
            ):
                sent = True
                try:
                    yield conn
                except psycopg.Error as exc:
                    if is_transient(exc):
                        await conn.close()  # so the pool replaces it
                    raise
        except psycopg.Error as exc:
            error = storage_error(repr(self), exc, sent=sent)
            if is_transient(exc):  # the connection failed, not the statement
                self._outage.failed(exc)
            raise error from exc
        except TimeoutError as exc:
            raise StorageError(
                f"{self!r}: no answer within {self.settings.client_timeout} s"
            ) from exc
        self._outage.succeeded()

    async def _one(self, sql: str, params: dict[str, Any]) -> tuple[int, ...]:
        """The one row of counts a client verb's statement returns."""
        async with self._connection(kept=True) as conn:
            rows = await raw.fetch(conn, sql, params)
        return tuple(int(v or 0) for v in rows[0])

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the schema and apply pending migrations (idempotent)."""
        if self._pool is not None:
            return
        if self._opening is None or self._opening.done():
            self._opening = asyncio.ensure_future(self._open())
        await asyncio.shield(self._opening)

    async def _open(self) -> None:
        try:
            opened = await open_sessions(
                self._conninfo,
                self.schema,
                self.settings,
                pooler=self._pooler,
                listen_url=self._listen_url,
                pool_size=(self._min_size, self._max_size),
                channels=self._channels,
                origin=self._origin,
                on_notify=self._wakeups.notify,
            )
        except psycopg.Error as exc:
            raise storage_error(f"{self!r} (cannot open)", exc, sent=False) from exc
        self.settings = opened.settings
        self._skew = opened.skew
        self._listener = opened.listener
        self._poll = AdaptivePoll() if opened.listener is None else None
        self._pool = opened.pool

    def clock(self) -> float:
        """Return the database server's current time, as estimated here.

        Every occurrence time on PostgreSQL comes from the database clock
        (DESIGN §7): the provider stamps messages with it, and the runtime
        stamps turns, and so timer fire times, with this estimate, so
        runtimes whose clocks are skewed cannot reorder what happened.
        """
        return time.time() + self._skew

    async def close(self) -> None:
        """Close the pool and the LISTEN connection (idempotent)."""
        await self._vacuum.stop()
        if self._pool is not None:
            await self._members.leave()
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        if pool is not None:
            await self._kept.release(pool)
            await pool.close()

    async def drop_schema(self) -> None:
        """Drop the provider's schema with everything in it (tests, teardown)."""
        async with self._connection() as conn:
            await conn.execute(
                f"DROP SCHEMA IF EXISTS {quote_ident(self.schema)} CASCADE"
            )

    # --- client verbs ---------------------------------------------------

    async def create_instance(self, new: NewInstance) -> None:
        """Create an instance row (status Running) and enqueue its start message.

        Raises:
            InstanceExists: The id is taken; nothing is written.
        """
        start = new.start
        created, _ = await self._one(
            self._sql.create_instance, {**create_params(new), **self._wake_params}
        )
        if created != 1:
            raise InstanceExists(new.instance_id)
        self._wakeups.due("orchestrations", start.visible_at)
        self._wakeups.notify("orchestrations", "instances")

    async def enqueue(self, instance_id: str, message: Message) -> None:
        """Append a message to an instance's queue.

        Raises:
            InstanceNotFound: No such instance; nothing is written.
        """
        sent, _ = await self._one(
            self._sql.enqueue,
            {"iid": instance_id, **message_params(message), **self._wake_params},
        )
        if sent != 1:
            raise InstanceNotFound(instance_id)
        self._wakeups.due("orchestrations", message.visible_at)
        self._wakeups.notify("orchestrations")

    async def read_history(
        self, instance_id: str, execution_id: int | None = None
    ) -> list[str]:
        """Return the JSON text of each event, in event-id order.

        ``execution_id=None`` reads the instance's current execution; an
        unknown instance has an empty history.
        """
        async with self._connection() as conn:
            cursor = await conn.execute(
                self._sql.read_history, {"iid": instance_id, "exec": execution_id}
            )
            rows = await cursor.fetchall()
        return [row[0] for row in rows]

    async def delete_instance(self, instance_id: str) -> bool:
        """Delete an instance and its sub-orchestrations, recursively.

        Each goes with its history, messages and activity work, in one
        transaction; see `Provider.delete_instance`.

        Returns:
            ``False`` if there was no such instance (nothing is deleted).
        """
        sql = self._sql
        async with self._connection() as conn, conn.transaction():
            cursor = await conn.execute(sql.delete_root, {"iid": instance_id})
            if await cursor.fetchone() is None:
                return False
            deleted = {instance_id}
            level = [instance_id]
            while level:
                cursor = await conn.execute(sql.delete_children, {"ids": level})
                level = [row[0] for row in await cursor.fetchall()]
                level = [iid for iid in level if iid not in deleted]
                deleted.update(level)
            params = {"ids": sorted(deleted), **self._wake_params}
            for step in sql.delete_steps:
                await conn.execute(step, params)
        self._wakeups.notify("instances")
        return True

    # --- orchestration dispatcher ---------------------------------------

    async def fetch_orchestrations(
        self, max_items: int, lock_timeout: float, handlers: Handlers | None = None
    ) -> list[OrchestrationItem]:
        """Lock up to *max_items* instances that have visible messages.

        Instances come in the order of their oldest due message; instances
        other runtimes hold or are locking right now are skipped, never
        waited for, and so are, for ``affinity`` seconds, instances whose
        last turn another provider object fetched. Each comes with all its
        visible messages in occurrence order (ties: arrival order).
        """
        if max_items <= 0:
            return []
        self._vacuum.start()
        await self._members.beat()
        params = {
            "scan": max_items * 4,
            "n": max_items,
            "lease": lock_timeout,
            "me": self._origin,
            "affinity": self._affinity,
            "busy": self._members.fetch_param(self._listener is not None),
            **handler_params(handlers),
        }
        try:
            async with self._connection() as conn:
                sent = time.time()
                got = await fetch_orchestrations(conn, self._sql, params)
        except BaseException:
            self._members.fetched(None)
            raise
        items, db_now, waited = got
        self._members.fetched(bool(items))
        self._wake_params["spare_orch"] = (
            self.clock() + SPARE_FOR if len(items) < max_items else 0.0
        )
        if db_now is not None:
            await self._members.pace(waited)  # behind, or keeping up?
            self._skew = db_now - sent
            if self._poll is not None:
                self._poll.busy("orchestrations")
        return items

    async def commit_turns(self, turns: Sequence[TurnCommit]) -> list[bool]:
        """Commit turns; each one atomically. Returns per-turn success.

        The batch is normally one statement, so one transaction: a guard
        (lock still held, ``history_start`` equal to the stored length,
        execution not older than the stored one) selects the turns that
        commit and every write is restricted to them, so a rejected turn
        writes nothing while the others commit. If the statement fails (a
        constraint violated by one turn, a deadlock with another runtime),
        the batch is retried one turn per savepoint (see `_pg_batch.commit`).

        Raises:
            ValueError: A turn's event ids are not consecutive from
                ``history_start + 1`` (a runtime bug); nothing is written.
        """
        for turn in turns:
            check_events(turn)
        if not turns:
            return []
        async with self._connection(kept=True) as conn:
            committed = await commit(
                conn,
                self._sql.commit,
                self._sql.abandon_orchestration,
                self._wake_params,
                turns,
            )
        results = [index in committed for index in range(len(turns))]
        self._after_commit([t for t, ok in zip(turns, results, strict=True) if ok])
        return results

    def _after_commit(self, committed: list[TurnCommit]) -> None:
        self._wakeups.committed(committed)

    async def abandon_orchestration(
        self, instance_id: str, lock_token: str, delay: float = 0.0
    ) -> None:
        """Release the lock without committing; messages become visible after *delay*.

        The attempt counter is kept (it counts fetches since the last
        commit), so an instance that keeps being abandoned shows up as poison.
        """
        released, _ = await self._one(
            self._sql.abandon_orchestration,
            {
                "iid": instance_id,
                "token": lock_token,
                "delay": float(delay),
                **self._wake_params,
            },
        )
        if released:
            if delay > 0:
                self._wakeups.due("orchestrations", time.time() + delay)
            else:
                self._wakeups.notify("orchestrations")

    # --- wake-ups -------------------------------------------------------

    async def wait(self, channel: Channel, timeout: float) -> None:
        """Return when *channel* may have new work, or after *timeout* seconds.

        Wakes on writes through this object at once, on writes by other
        processes through ``NOTIFY``, and when a delayed message or retry
        written through this object becomes due. It returns at once if such
        a wake-up happened since the calling task's previous call to this
        provider, so one landing between a fetch and the wait is never lost.
        Delayed work written by other processes is seen after *timeout*.
        Without a ``LISTEN`` connection (behind a pooler, no ``listen_url``)
        it returns after at most 0.2 s, so the caller polls.
        """
        if self._poll is not None:
            timeout = self._poll.cap(channel, timeout)
        elif self._listener is not None and not self._listener.hears(channel):
            # The first wait on this kind: hear other processes from now on.
            # What they wrote before we listened was not heard: return, so
            # the caller looks (an early return is always allowed).
            await self._listener.listen(channel)
            if channel == "instances":
                await self._members.watch()
            return
        elif channel == "instances" and self._listener is not None:
            await self._members.watch()  # renewed while it waits
        elif channel == "orchestrations" and self._listener is not None:
            # Busy: starts homed here do not notify; look again soon.
            shorter = await self._members.before_sleep()
            if shorter is not None:
                timeout = min(timeout, shorter)
        await self._wakeups.wait(channel, timeout)
