"""The PostgreSQL runtime keeps one pooled connection for its commits.

It saves a pool round (~40-60 us of client CPU) per commit, and must never
cost anything else: a connection that failed is replaced, one left in a
transaction goes back to the pool, two commits at once both go through,
a small pool keeps nothing, the kept one is refreshed, and closing the
provider closes it (the suite fails on any unclosed-connection warning).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg
import pytest

from perdure.providers import _pg_kept
from perdure.providers._pg_conn import TransientStorageError
from perdure.providers.conformance import Kit
from perdure.providers.postgres import PostgresProvider

# The fresh_pg fixture (conftest): opens a provider on a fresh schema.
FreshPostgres = Callable[..., AbstractAsyncContextManager[PostgresProvider]]


async def _step(provider: PostgresProvider, iid: str) -> bool:
    """Start *iid* and commit its first turn; whether the commit went in."""
    await provider.create_instance(Kit.new(iid))
    items = await provider.fetch_orchestrations(10, 30.0)
    turns = [Kit.turn(item, "started") for item in items]
    return all(await provider.commit_turns(turns))


async def _terminate(url: str, conn: psycopg.AsyncConnection[Any]) -> None:
    """End *conn*'s server session from another connection."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))


def _kept(provider: PostgresProvider) -> psycopg.AsyncConnection[Any] | None:
    return provider._kept._conn


async def test_commits_reuse_one_connection(fresh_pg: FreshPostgres) -> None:
    async with fresh_pg() as provider:
        assert await _step(provider, "a")
        conn = _kept(provider)
        assert conn is not None
        pid = conn.info.backend_pid
        for n in range(5):
            assert await _step(provider, f"b{n}")
        assert _kept(provider) is conn
        assert conn.info.backend_pid == pid


async def test_a_failed_connection_is_replaced(
    pg_url: str, fresh_pg: FreshPostgres
) -> None:
    async with fresh_pg() as provider:
        assert await _step(provider, "a")
        conn = _kept(provider)
        assert conn is not None
        await _terminate(pg_url, conn)
        # Its next use fails (as a pooled connection's would: neither is
        # checked before use) and gives it up; the one after takes another.
        with pytest.raises(TransientStorageError):
            await provider.create_instance(Kit.new("b"))
        assert _kept(provider) is None
        assert await _step(provider, "c")
        second = _kept(provider)
        assert second not in (None, conn)
        # The same for a commit.
        await provider.create_instance(Kit.new("d"))
        items = await provider.fetch_orchestrations(10, 30.0)
        assert second is not None
        await _terminate(pg_url, second)
        with pytest.raises(TransientStorageError):
            await provider.commit_turns([Kit.turn(item, "started") for item in items])
        assert _kept(provider) is None
        assert await _step(provider, "e")


async def test_commits_at_once_both_go_through(fresh_pg: FreshPostgres) -> None:
    async with fresh_pg() as provider:
        for n in range(4):
            await provider.create_instance(Kit.new(f"i{n}"))
        items = await provider.fetch_orchestrations(10, 30.0)
        assert len(items) == 4
        turns = [Kit.turn(item, "started") for item in items]
        oks = await asyncio.gather(
            provider.commit_turns(turns[:2]), provider.commit_turns(turns[2:])
        )
        assert list(oks) == [[True, True], [True, True]]


async def test_a_small_pool_keeps_nothing(fresh_pg: FreshPostgres) -> None:
    async with fresh_pg(max_size=2) as provider:
        assert await _step(provider, "a")
        assert _kept(provider) is None


async def test_the_kept_connection_is_refreshed(
    fresh_pg: FreshPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fresh_pg() as provider:
        monkeypatch.setattr(_pg_kept, "REFRESH", 0.0)
        assert await _step(provider, "a")
        assert _kept(provider) is None  # given back after its use
        monkeypatch.setattr(_pg_kept, "REFRESH", 60.0)
        assert await _step(provider, "b")
        assert _kept(provider) is not None


async def test_a_clients_verbs_reuse_it_too(fresh_pg: FreshPostgres) -> None:
    async with fresh_pg() as provider:
        await provider.create_instance(Kit.new("a"))
        conn = _kept(provider)
        assert conn is not None
        record = await provider.get_instance("a")
        assert record is not None and record.status == "Running"
        assert isinstance(record.execution_id, int)
        assert isinstance(record.created_at, float)
        assert await provider.get_instance("nope") is None
        await provider.enqueue("a", Kit.message("ping", {}))
        assert _kept(provider) is conn


class _FakeConn:
    """What `KeptConnection` looks at: ``closed`` and the transaction status."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False
        self.info = type(
            "Info", (), {"transaction_status": psycopg.pq.TransactionStatus.IDLE}
        )()
        self.users = 0


class _SlowPool:
    """A pool whose getconn waits (as when every connection is in use)."""

    def __init__(self) -> None:
        self.made = 0
        self.back: list[_FakeConn] = []

    async def getconn(self) -> _FakeConn:
        await asyncio.sleep(0.01)
        self.made += 1
        return _FakeConn(self.made)

    async def putconn(self, conn: _FakeConn) -> None:
        self.back.append(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[_FakeConn]:
        conn = await self.getconn()
        try:
            yield conn
        finally:
            await self.putconn(conn)


async def test_callers_racing_for_the_first_connection_never_share_one() -> None:
    # The failover test found it: while the first caller waited for the pool,
    # a second found nothing kept and took its own; both became "the kept
    # one", the first one's exit cleared the busy flag of the second's, and a
    # third then used the second's connection at the same time (replies
    # mixed, a wait that never ended).
    kept = _pg_kept.KeptConnection(keep=True)
    pool: Any = _SlowPool()

    async def call(start: float, hold: float) -> None:
        await asyncio.sleep(start)
        async with kept.use(pool) as used:
            conn: Any = used
            conn.users += 1
            assert conn.users == 1, f"connection {conn.n} shared"
            await asyncio.sleep(hold)
            conn.users -= 1

    # Two callers find nothing kept at once; the first is done long before
    # the second; a third comes in between.
    await asyncio.gather(call(0, 0.001), call(0, 0.1), call(0.05, 0.01))
    await kept.release(pool)
    assert all(conn.users == 0 for conn in pool.back)
