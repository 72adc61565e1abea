"""One statement, one round trip, through libpq directly: the hot path's calls.

psycopg's ``AsyncConnection.execute`` costs ~190 us of client CPU per round
trip on the development machine (a cursor, query conversion, a dumper per
parameter, a loader per column, two waits that each register and remove
the socket with the event loop); driving the same libpq connection
directly costs ~115 us. A sequential workflow's step on PostgreSQL is one
round trip (its commit), so that difference is a tenth of the runtime's CPU
per step. `fetch` is used where every parameter is a str, float, int, bool
or None and the statement returns text (JSON where it returns structure):
the commit statement and the activity completions.

The connection stays psycopg's: it is used between psycopg calls, never
during one (a pooled connection belongs to its holder), and is left idle,
or in the transaction it was in, as psycopg itself would leave it. A call
interrupted mid-statement (cancelled, timed out) closes the connection: its
state is unknown, and the pool replaces a closed connection. Errors are
psycopg's own exception classes, built from the server's error report, so
callers handle them exactly as psycopg's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import re
import time
import weakref
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import errors as pg_errors, pq

__all__ = ["fetch"]

# %(name)s placeholders, as psycopg writes them.
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# Parameter type OIDs as psycopg would send them: str as "unknown" (the
# server infers the type from the statement), numbers and booleans typed.
_UNKNOWN, _BOOL, _INT8, _FLOAT8 = 0, 16, 20, 701
#: Seconds a statement stays prepared before it is prepared again, the first
#: time; each time after, twice as long, up to `REPLAN_MAX`. PostgreSQL
#: plans a prepared statement for the tables as they are: after five custom
#: plans it may keep a generic one until something invalidates it, and the
#: commit statement's generic plan made while ``instances`` was tiny (a
#: hash join over a sequential scan) stayed when the table had grown (at
#: 300,000 rows a commit took 110 ms instead of 0.44 ms with a fresh plan).
#: Doubling keeps a growing table's plan at most one doubling of age behind.
REPLAN_FIRST = 1.0
REPLAN_MAX = 64.0


@dataclasses.dataclass(slots=True)
class _Statement:
    """A statement prepared on one connection."""

    name: bytes
    expires: float  # _clock() when it is prepared again
    lifetime: float


Shape = tuple[bytes, tuple[int, ...]]
# Prepared statements of each connection, by text and parameter types
# (types included as psycopg does: a statement prepared with a NULL's
# "unknown" type would read a later float as the type the server guessed).
# A connection closed and replaced is a new key; its entry goes with it.
_prepared: weakref.WeakKeyDictionary[Any, dict[Shape, _Statement]] = (
    weakref.WeakKeyDictionary()
)
_names = itertools.count()  # statement names, unique in this process
_clock = time.monotonic  # (a test replaces it)
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


@functools.lru_cache(maxsize=512)
def _compile(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """*sql* with ``$n`` placeholders, and the parameter name of each ``n``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, sql).encode(), tuple(names)


def _encode(value: object) -> tuple[bytes | None, int]:
    if value is None:
        return None, _UNKNOWN
    if isinstance(value, str):
        if "\x00" in value:
            # libpq would cut the value there; psycopg refuses it too.
            raise psycopg.DataError("PostgreSQL text cannot contain NUL (0x00)")
        return value.encode(), _UNKNOWN
    if isinstance(value, bool):
        return (b"t" if value else b"f"), _BOOL
    if isinstance(value, int):
        return str(value).encode(), _INT8
    if isinstance(value, float):
        return repr(value).encode(), _FLOAT8
    raise TypeError(f"cannot send {type(value).__name__} as a raw parameter")


async def fetch(
    conn: psycopg.AsyncConnection[Any], sql: str, params: Mapping[str, object]
) -> list[tuple[str | None, ...]]:
    """Run *sql* (``%(name)s`` placeholders) with *params*; its rows, as text.

    Prepared on the connection from its first use when the connection
    prepares statements (psycopg's ``prepare_threshold`` is set; not behind
    a transaction pooler).

    Raises:
        psycopg.Error: The statement failed (the server's error class, as
            psycopg raises it) or the connection did.
        TypeError: A parameter of another type than those above.
    """
    text, names = _compile(sql)
    # psycopg's own lock: one operation at a time on a connection, whether
    # it goes through psycopg or here (two at once would mix their replies).
    async with conn.lock:
        return await _fetch(conn, text, names, params)


async def _fetch(
    conn: psycopg.AsyncConnection[Any],
    text: bytes,
    names: tuple[str, ...],
    params: Mapping[str, object],
) -> list[tuple[str | None, ...]]:
    values: list[bytes | None] = []
    types: list[int] = []
    for key in names:
        value, oid = _encode(params[key])
        values.append(value)
        types.append(oid)
    pgconn = conn.pgconn
    if conn.closed or pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the connection is closed")
    prepares = conn.prepare_threshold is not None  # None: behind a pooler
    statements = _prepared.setdefault(conn, {}) if prepares else None
    try:
        if statements is None:
            pgconn.send_query_params(text, values, types)
            return await _rows(pgconn)
        shape = (text, tuple(types))
        statement = await _statement(pgconn, statements, shape)
        pgconn.send_query_prepared(statement.name, values)
        try:
            return await _rows(pgconn)
        except pg_errors.InvalidSqlStatementName:
            # Deallocated behind our back (DISCARD ALL): prepare it again.
            del statements[shape]
            return await _fetch(conn, text, names, params)
    except BaseException as exc:
        if not isinstance(exc, pg_errors.Error) or pgconn.is_busy():
            # Interrupted mid-statement: its state is unknown.
            await conn.close()
        raise


async def _statement(
    pgconn: pq.abc.PGconn, statements: dict[Shape, _Statement], shape: Shape
) -> _Statement:
    """The prepared statement of *shape*: prepared now if new or too old."""
    now = _clock()
    statement = statements.get(shape)
    if statement is not None and now < statement.expires:
        return statement
    lifetime = REPLAN_FIRST
    if statement is not None:
        del statements[shape]
        lifetime = min(statement.lifetime * 2, REPLAN_MAX)
        pgconn.send_query(b"DEALLOCATE " + statement.name)
        with contextlib.suppress(pg_errors.InvalidSqlStatementName):
            await _rows(pgconn)  # (already gone after a DISCARD ALL)
    name = b"_perdure_%d" % next(_names)
    text, types = shape
    pgconn.send_prepare(name, text, types)
    await _rows(pgconn)
    statement = statements[shape] = _Statement(name, now + lifetime, lifetime)
    return statement


async def _rows(pgconn: pq.abc.PGconn) -> list[tuple[str | None, ...]]:
    """Send what is buffered, then read every result of the statement."""
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():
        await _ready(loop, fd, write=True)
    results: list[pq.abc.PGresult] = []
    while True:
        pgconn.consume_input()
        if pgconn.is_busy():
            await _ready(loop, fd, write=False)
            continue
        result = pgconn.get_result()
        if result is None:
            break
        results.append(result)
    rows: list[tuple[str | None, ...]] = []
    code = _encoding(pgconn)
    for result in results:
        if result.status not in _OK:
            raise pg_errors.error_from_result(result, encoding=code)
        for row in range(result.ntuples):
            values = [result.get_value(row, col) for col in range(result.nfields)]
            rows.append(tuple(None if v is None else v.decode(code) for v in values))
    return rows


def _encoding(pgconn: pq.abc.PGconn) -> str:
    return str(getattr(pgconn, "_encoding", "utf-8"))


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> None:
    """Wait until the socket *fd* can be read (or written)."""
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await future
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
