"""Keeping the PostgreSQL queue tables small without trusting autovacuum's timing.

Every message and activity is one insert and one delete, so ``messages`` and
``activities`` leave a dead row per step. When autovacuum is off (as on some
servers), or cannot keep up, those dead rows pile up, every fetch walks
them, fetches slow down, the backlog grows: the "queue death spiral"
(issue 17's soak: 820,000 dead rows against ~150 live ones, fetches 0.19 s).

So a runtime vacuums its own hot tables: every `CHECK_EVERY` seconds (the
first looks sooner: after `FIRST_CHECK` seconds, then twice as long each
time) the `QueueVacuum` of a provider that fetches work reads
``pg_stat_user_tables``
and runs ``VACUUM`` on a queue table whose dead rows exceed both
`DEAD_ROWS` and its live rows. One runtime at a time does it (an advisory
lock per schema), on an autocommit pooled connection (VACUUM cannot run in a
transaction). This is in addition to autovacuum, not instead of it: a
transaction held open elsewhere (the xmin horizon) still keeps dead rows
alive, and only ending it helps (``perdure doctor`` reports it).

The same loop runs ``ANALYZE`` on the tables that grew or changed by a
tenth since their last one (`analyze_grown`): that is what makes the
server plan its prepared statements again as the tables grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg

from perdure._outage import log_failure
from perdure.providers._pg_schema import quote_ident

__all__ = [
    "ANALYZE_BASE",
    "ANALYZE_SCALE",
    "CHECK_EVERY",
    "DEAD_ROWS",
    "FIRST_CHECK",
    "QueueVacuum",
    "analyze_grown",
    "vacuum_queues",
]

_log = logging.getLogger("perdure.providers.postgres")

#: Seconds between two looks at the queue tables' dead rows.
CHECK_EVERY = 30.0
#: Seconds before the first check; each next one twice as long, up to
#: `CHECK_EVERY`.
FIRST_CHECK = 2.0
#: Dead rows of a queue table above which (and above its live rows) it is
#: vacuumed.
DEAD_ROWS = 10_000
_TABLES = ("messages", "activities")
#: A table is analyzed once this many rows plus `ANALYZE_SCALE` of its rows
#: changed since its last ANALYZE (autovacuum's default analyze threshold).
ANALYZE_BASE = 50
ANALYZE_SCALE = 0.1
_ANALYZED = ("instances", "history", "messages", "activities")

Conn = psycopg.AsyncConnection[Any]


async def vacuum_queues(
    conn: Conn, schema: str, dead_rows: int = DEAD_ROWS
) -> list[str]:
    """Vacuum the queue tables of *schema* that need it; return their names.

    *conn* must be in autocommit mode. Does nothing (returns ``[]``) while
    another session holds this schema's vacuum lock.
    """
    return await _each(
        conn,
        schema,
        "VACUUM",
        _TABLES,
        "n_dead_tup >= %s AND n_dead_tup > n_live_tup",
        dead_rows,
    )


@contextlib.asynccontextmanager
async def _maintaining(conn: Conn, schema: str) -> AsyncIterator[bool]:
    """Whether this session holds *schema*'s maintenance lock (held inside)."""
    key = f"perdure-vacuum:{schema}"
    cursor = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
    row = await cursor.fetchone()
    if not row or not row[0]:
        yield False
        return
    try:
        yield True
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


async def analyze_grown(conn: Conn, schema: str) -> list[str]:
    """ANALYZE the tables of *schema* that changed enough; return their names.

    Not only for the planner's statistics: a server keeps a prepared
    statement's generic plan until something invalidates it, and an ANALYZE
    of a table invalidates every plan that reads it. With autovacuum off,
    nothing else did: the orchestration fetch planned while ``instances``
    held a few rows went on scanning it whole (127 ms a fetch at 300,000
    instances, 6.5 ms on a new connection). With autovacuum on, its own
    analyzes keep the counts below the threshold and this does nothing.
    *conn* must be in autocommit mode; one session at a time, as for
    `vacuum_queues`.
    """
    return await _each(
        conn,
        schema,
        "ANALYZE",
        _ANALYZED,
        f"n_mod_since_analyze >= {ANALYZE_BASE} + {ANALYZE_SCALE} * n_live_tup",
    )


async def _each(
    conn: Conn, schema: str, verb: str, tables: tuple[str, ...], cond: str, *args: Any
) -> list[str]:
    """Run *verb* on each of *tables* whose statistics meet *cond*; their names.

    Nothing (``[]``) while another session holds this schema's lock.
    """
    done: list[str] = []
    async with _maintaining(conn, schema) as mine:
        if not mine:
            return []
        cursor = await conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s"
            f" AND relname = ANY(%s) AND {cond}",
            (schema, list(tables), *args),
        )
        for (table,) in await cursor.fetchall():
            await conn.execute(f"{verb} {quote_ident(schema)}.{quote_ident(table)}")
            done.append(str(table))
    return done


class QueueVacuum:
    """The vacuum (and analyze) loop of one provider object (from its first fetch)."""

    def __init__(
        self,
        schema: str,
        connection: Callable[[], AbstractAsyncContextManager[Conn]],
        every: float = CHECK_EVERY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._schema = schema
        self._connection = connection
        self._every = every
        self._sleep = sleep  # (a test counts the delays)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop if it is not running."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="perdure-pg-vacuum")

    async def stop(self) -> None:
        """Stop the loop."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        # The first checks come sooner (2, 4, 8 ... s): every statement's
        # generic plan is made from the statistics of the moment
        # (_pg_conn._GENERIC_PLANS), and the first ones, made while the
        # tables were empty, stay until an ANALYZE invalidates them.
        delay = min(FIRST_CHECK, self._every)
        while True:
            await self._sleep(delay)
            delay = min(delay * 2, self._every)
            try:
                async with self._connection() as conn:
                    done = await vacuum_queues(conn, self._schema)
                    grown = await analyze_grown(conn, self._schema)
                if done:
                    _log.info("vacuumed %s (dead rows piled up)", ", ".join(done))
                if grown:
                    _log.debug("analyzed %s (changed since)", ", ".join(grown))
            except Exception as exc:
                log_failure(_log, exc, "vacuuming the queue tables failed")
