"""The SQLite provider groups the writes of one loop tick into one transaction.

A write that wakes a waiter (new work on a channel) is flushed a tick later
than one that wakes nobody, so that the woken waiter's own write joins the
same transaction: one commit for a completion and the turn it wakes. These
tests count ``BEGIN IMMEDIATE`` statements through SQLite's trace hook.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from perdure.providers.sqlite import SqliteProvider


def _write(value: int) -> Any:
    def fn(conn: sqlite3.Connection, now: float) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return fn


async def _opened(path: Path) -> tuple[SqliteProvider, list[str]]:
    provider = SqliteProvider(str(path / "groups.db"))
    await provider.open()
    conn = provider._db()
    conn.execute("CREATE TABLE t (v INTEGER)")
    begun: list[str] = []
    conn.set_trace_callback(
        lambda sql: begun.append(sql) if sql.startswith("BEGIN") else None
    )
    return provider, begun


def test_a_write_that_wakes_nobody_commits_at_the_next_tick(tmp_path: Path) -> None:
    async def main() -> None:
        provider, begun = await _opened(tmp_path)
        try:
            write = asyncio.ensure_future(provider._transaction(_write(1)))
            await asyncio.sleep(0)  # the write is queued in this tick
            await asyncio.sleep(0)  # the next tick commits it
            assert len(begun) == 1
            assert await write == 1
        finally:
            await provider.close()

    asyncio.run(main())


def test_a_woken_waiter_joins_a_group_begun_by_a_quiet_write(tmp_path: Path) -> None:
    async def main() -> None:
        provider, begun = await _opened(tmp_path)
        try:
            woken = asyncio.Event()

            async def waiter() -> int:
                await provider.wait("activities", 5.0)
                woken.set()
                return await provider._transaction(_write(3))

            waiting = asyncio.create_task(waiter())
            await asyncio.sleep(0.01)  # the waiter is waiting
            assert not woken.is_set()
            # In one tick: a write that wakes nobody, then one that wakes
            # the waiter; the waiter's write must join their transaction.
            quiet = asyncio.ensure_future(provider._transaction(_write(1)))
            loud = asyncio.ensure_future(
                provider._transaction(_write(2), ("activities",))
            )
            results = await asyncio.gather(quiet, loud, waiting)
            assert list(results) == [1, 2, 3]
            assert len(begun) == 1
            rows = provider._db().execute("SELECT v FROM t ORDER BY v").fetchall()
            assert rows == [(1,), (2,), (3,)]
        finally:
            await provider.close()

    asyncio.run(main())


def test_close_writes_a_deferred_group(tmp_path: Path) -> None:
    async def main() -> None:
        provider, _ = await _opened(tmp_path)
        quiet = asyncio.ensure_future(provider._transaction(_write(1)))
        loud = asyncio.ensure_future(provider._transaction(_write(2), ("activities",)))
        await asyncio.sleep(0)  # both queued, the flush deferred by one tick
        await provider.close()
        assert await quiet == 1 and await loud == 2

    asyncio.run(main())
    with sqlite3.connect(tmp_path / "groups.db") as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    conn.close()
