"""A pooled connection a provider keeps for its commits and client verbs.

Taking a connection from psycopg's pool and giving it back costs ~40-60 us
of client CPU (an asyncio lock, the checks on return), and a sequential
workflow's step on PostgreSQL is one commit. A runtime's commits are
serialised (one in flight per dispatcher, `perdure._group_commit`), so one
connection is kept for them: taken from the pool by the first commit and
given back when it failed or was left in a transaction, after `REFRESH`
seconds (so the pool's ``max_lifetime`` and checks still apply to it), and
when the provider closes. A commit that comes while the kept connection is
in use (two runtimes sharing one provider) takes a pooled one, as before.
A client's one-row verbs (start, raise, status) use it the same way: a
client calling one at a time pays no pool round either.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool

__all__ = ["REFRESH", "KeptConnection"]

Conn = psycopg.AsyncConnection[Any]

#: Seconds a connection is kept before it goes back to the pool.
REFRESH = 60.0


class KeptConnection:
    """One pooled connection kept between uses by a serialised caller.

    Args:
        keep: Whether to keep one at all (not when the pool is so small that
            keeping one would leave the rest of the runtime waiting).
    """

    def __init__(self, keep: bool) -> None:
        self._keep = keep
        self._conn: Conn | None = None
        self._since = 0.0
        self._busy = False
        self._released = False  # the provider is closing

    @contextlib.asynccontextmanager
    async def use(self, pool: AsyncConnectionPool[Conn]) -> AsyncIterator[Conn]:
        """The kept connection (taking one if none is kept), or a pooled one."""
        if self._busy or self._released or not self._keep:
            async with pool.connection() as other:
                yield other
            return
        # Taken before the first await: a caller arriving while this one
        # waits for the pool must not share the connection it gets.
        self._busy = True
        try:
            conn = self._conn
            if conn is None:
                conn = await pool.getconn()
                self._conn, self._since = conn, time.monotonic()
            try:
                yield conn
            finally:
                if (
                    self._closing()  # released meanwhile
                    or conn.closed
                    or conn.info.transaction_status != pq.TransactionStatus.IDLE
                    or time.monotonic() - self._since > REFRESH
                ):
                    # The pool discards a broken connection and rolls back
                    # an open transaction, as for any connection given back
                    # (and closes it if the pool itself closed meanwhile).
                    if self._conn is conn:
                        self._conn = None
                    await pool.putconn(conn)
        finally:
            self._busy = False

    def _closing(self) -> bool:
        # (A method: mypy would keep `self._released` narrowed across awaits.)
        return self._released

    async def release(self, pool: AsyncConnectionPool[Conn]) -> None:
        """Give the kept connection back (before the pool closes).

        One in use now goes back when its user is done with it.
        """
        self._released = True
        conn, self._conn = self._conn, None
        if conn is not None and not self._busy:
            await pool.putconn(conn)
