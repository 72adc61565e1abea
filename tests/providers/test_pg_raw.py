"""The commit path's statements through libpq directly (`_pg_raw.fetch`).

What psycopg's ``execute`` guarantees has to hold here too: parameters of
each type arrive as psycopg would send them, errors are psycopg's classes
and leave the connection usable, a statement interrupted midway never goes
back to the pool half-read, prepared statements survive being deallocated,
and a connection that does not prepare (behind a transaction pooler) works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import cast

import psycopg
import pytest
from psycopg import errors as pg_errors

from perdure.providers import _pg_raw as raw


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[psycopg.AsyncConnection[object]]:
    connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        yield connection
    finally:
        await connection.close()


async def test_parameters_arrive_typed_as_psycopg_sends_them(pg_url: str) -> None:
    async with connect(pg_url) as conn:
        sql = (
            "SELECT json_build_array(%(s)s::text, %(f)s + 0.5, %(i)s + 1, NOT %(b)s,"
            " %(n)s::text IS NULL, %(s)s::text || %(s)s::text, %(u)s::text)"
        )
        params = {"s": "a'b\\c", "f": 1.25, "i": 2**40, "b": True, "n": None, "u": "é€"}
        for _ in range(3):  # prepared, then reused
            rows = await raw.fetch(conn, sql, params)
            assert json.loads(rows[0][0] or "") == [
                "a'b\\c",
                1.75,
                2**40 + 1,
                False,
                True,
                "a'b\\ca'b\\c",
                "é€",
            ]
        assert await raw.fetch(conn, "SELECT NULL::text, 'x'", {}) == [(None, "x")]
        assert await raw.fetch(conn, "SELECT 1 WHERE false", {}) == []


async def test_other_parameter_types_are_refused_before_sending(pg_url: str) -> None:
    async with connect(pg_url) as conn:
        with pytest.raises(TypeError, match="bytes"):
            await raw.fetch(conn, "SELECT %(x)s", {"x": b"\x00"})
        # libpq would cut a text at a NUL: refused, as psycopg refuses it.
        with pytest.raises(psycopg.DataError, match="NUL"):
            await raw.fetch(conn, "SELECT %(x)s::text", {"x": "a\x00b"})
        # A lone surrogate cannot be encoded (an item error to the caller).
        with pytest.raises(UnicodeEncodeError):
            await raw.fetch(conn, "SELECT %(x)s::text", {"x": "\udc80"})
        assert await raw.fetch(conn, "SELECT 1", {}) == [("1",)]


async def test_errors_are_psycopgs_and_leave_the_connection_usable(pg_url: str) -> None:
    async with connect(pg_url) as conn:
        with pytest.raises(pg_errors.DivisionByZero):
            await raw.fetch(conn, "SELECT 1 / %(z)s", {"z": 0})
        with pytest.raises(pg_errors.UndefinedTable):
            await raw.fetch(conn, "SELECT * FROM no_such_table_here", {})
        assert not conn.closed
        assert await raw.fetch(conn, "SELECT 1 / %(z)s", {"z": 1}) == [("1",)]
        # Inside a transaction the failure aborts it, as with psycopg.
        with pytest.raises(pg_errors.DivisionByZero):
            async with conn.transaction():
                await raw.fetch(conn, "SELECT 1 / %(z)s", {"z": 0})
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_a_statement_interrupted_midway_closes_the_connection(
    pg_url: str,
) -> None:
    async with connect(pg_url) as conn, connect(pg_url) as admin:
        pid = conn.info.backend_pid
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await raw.fetch(conn, "SELECT pg_sleep(%(s)s)", {"s": 5.0})
        # Its state is unknown: a pool given it back replaces it.
        assert conn.closed
        with pytest.raises(psycopg.OperationalError):
            await raw.fetch(conn, "SELECT 1", {})
        # The server may still be sleeping (holding back vacuum for the
        # tests after this one): end it.
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_a_deallocated_statement_is_prepared_again(pg_url: str) -> None:
    async with connect(pg_url) as conn:
        sql = "SELECT %(x)s::int * 2"
        assert await raw.fetch(conn, sql, {"x": 2}) == [("4",)]
        await conn.execute("DEALLOCATE ALL")
        assert await raw.fetch(conn, sql, {"x": 3}) == [("6",)]


async def test_without_prepared_statements_and_with_large_parameters(
    pg_url: str,
) -> None:
    # As behind a transaction pooler: nothing is prepared.
    conn = await psycopg.AsyncConnection.connect(
        pg_url, autocommit=True, prepare_threshold=None
    )
    try:
        big = "x" * 3_000_000  # more than a socket buffer: sent in parts
        for _ in range(2):
            rows = await raw.fetch(conn, "SELECT length(%(b)s::text)", {"b": big})
            assert rows == [(str(len(big)),)]
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE %(p)s",
            {"p": "_perdure_%"},
        )
        assert await cursor.fetchone() == (0,)
    finally:
        await conn.close()


async def test_a_statement_is_prepared_per_parameter_types(pg_url: str) -> None:
    async with connect(pg_url) as conn:
        sql = "SELECT coalesce(%(x)s, 0) + 1"
        # Prepared with a NULL the server types "x" as an integer; a float
        # sent to that statement would fail. Each type signature gets its own.
        assert await raw.fetch(conn, sql, {"x": None}) == [("1",)]
        assert await raw.fetch(conn, sql, {"x": 1.5}) == [("2.5",)]
        assert await raw.fetch(conn, sql, {"x": None}) == [("1",)]


async def _prepared_names(conn: psycopg.AsyncConnection[object]) -> list[str]:
    cursor = await conn.execute(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE %(p)s"
        " ORDER BY prepare_time",
        {"p": "_perdure_%"},
    )
    rows = cast(list[tuple[object, ...]], await cursor.fetchall())
    return [str(row[0]) for row in rows]


async def test_a_statement_is_prepared_again_as_it_ages(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (issue 17): PostgreSQL kept the commit's generic plan made
    # while the instances table was tiny (a sequential scan) after it grew:
    # 110 ms a commit at 300,000 rows instead of 0.44 ms. A statement is now
    # prepared again (so planned again) after 1, 2, 4... up to 64 seconds.
    now = [1000.0]
    monkeypatch.setattr(raw, "_clock", lambda: now[0])
    async with connect(pg_url) as conn:
        sql = "SELECT %(x)s::int * 2"
        assert await raw.fetch(conn, sql, {"x": 1}) == [("2",)]
        first = await _prepared_names(conn)
        now[0] += raw.REPLAN_FIRST / 2
        assert await raw.fetch(conn, sql, {"x": 2}) == [("4",)]
        assert await _prepared_names(conn) == first  # still young
        seen = [first]
        for lifetime in (1, 2, 4, 8, 16, 32, 64, 64):
            now[0] += lifetime * raw.REPLAN_FIRST
            assert await raw.fetch(conn, sql, {"x": 3}) == [("6",)]
            names = await _prepared_names(conn)
            assert len(names) == 1 and names != seen[-1]  # the old one is gone
            seen.append(names)
            # Just before its doubled lifetime ends it is kept.
            now[0] += min(2 * lifetime, 64) * raw.REPLAN_FIRST - 0.01
            assert await raw.fetch(conn, sql, {"x": 4}) == [("8",)]
            assert await _prepared_names(conn) == names
            now[0] += 0.01 - min(2 * lifetime, 64) * raw.REPLAN_FIRST
        # Deallocated behind its back, then expired: prepared again cleanly.
        await conn.execute("DEALLOCATE ALL")
        now[0] += raw.REPLAN_MAX
        assert await raw.fetch(conn, sql, {"x": 5}) == [("10",)]
        assert len(await _prepared_names(conn)) == 1
