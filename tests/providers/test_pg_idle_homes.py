"""Notifications only where someone needs them (issue 17).

A busy runtime is not notified of starts homed on it; instance endings are
notified only while a client waits for instances; creations never.

Every NOTIFY costs each LISTENing backend of the database a transaction,
whatever its channel, so a start that notified its home cost K transactions
with K runtimes. A runtime whose fetch found work marks its ``runtimes`` row
busy and fetches again by itself; before it sleeps it marks the row idle and
looks once more (`perdure.providers._pg_members`). These tests pin both
halves: no notification while busy, and no start lost to the race between a
start and the runtime going idle (the start reads the row ``FOR SHARE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from perdure.providers._pg_listen import private_channel
from perdure.providers._pg_members import BUSY_POLL, BUSY_POLLS
from perdure.providers._pg_sql import create_params
from perdure.providers.conformance import Kit
from perdure.providers.postgres import PostgresProvider


def _url() -> str:
    url = os.environ.get("PERDURE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PERDURE_TEST_POSTGRES_URL is not set")
        pytest.skip("PERDURE_TEST_POSTGRES_URL is not set")
    return url


@contextlib.asynccontextmanager
async def _pair() -> AsyncIterator[tuple[PostgresProvider, PostgresProvider]]:
    url = _url()
    schema = f"perdure_idle_{uuid.uuid4().hex[:10]}"
    runtime = PostgresProvider(url, schema=schema)
    client = PostgresProvider(url, schema=schema)
    await runtime.open()
    await client.open()
    # A provider hears notifications from its first wait on a kind on.
    await runtime.wait("orchestrations", 0.0)
    try:
        yield runtime, client
    finally:
        await runtime.close()
        await client.drop_schema()
        await client.close()


async def _idle(provider: PostgresProvider) -> bool:
    async with provider._connection() as conn:
        cursor = await conn.execute(
            f'SELECT idle FROM "{provider.schema}".runtimes WHERE origin = %s',
            (provider._origin,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return bool(row[0])


async def _ear(
    runtime: PostgresProvider, channel: str | None = None
) -> psycopg.AsyncConnection[Any]:
    """A connection hearing *channel* (default: *runtime*'s own channel)."""
    conn = await psycopg.AsyncConnection.connect(_url(), autocommit=True)
    channel = channel or private_channel(runtime._origin)
    await conn.execute(f'LISTEN "{channel}"')
    return conn


async def _heard(conn: psycopg.AsyncConnection[Any], within: float) -> int:
    count = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            async for _ in conn.notifies():
                count += 1
    return count


def test_busy_home_is_not_notified_and_looks_again_itself() -> None:
    async def body() -> None:
        async with _pair() as (runtime, client):
            ear = await _ear(runtime)
            try:
                # The first fetch announces the runtime (idle) and finds
                # nothing; a start homed there notifies it.
                assert await runtime.fetch_orchestrations(10, 30.0) == []
                await client.create_instance(Kit.new("first"))
                assert await _heard(ear, 2.0) == 1
                # Its fetch finds work: busy. The next start sends nothing.
                assert len(await runtime.fetch_orchestrations(10, 30.0)) == 1
                assert not await _idle(runtime)
                await client.create_instance(Kit.new("second"))
                assert await _heard(ear, 0.5) == 0
                taken = await runtime.fetch_orchestrations(10, 30.0)
                assert [i.instance.instance_id for i in taken] == ["second"]
                # Empty fetches: it waits BUSY_POLL, not the timeout, and
                # stays busy for BUSY_POLLS of them...
                for _ in range(BUSY_POLLS):
                    assert await runtime.fetch_orchestrations(10, 30.0) == []
                    began = time.monotonic()
                    await runtime.wait("orchestrations", 30.0)
                    assert time.monotonic() - began < 10.0  # not the 30 s
                    assert not await _idle(runtime)
                # ...then it marks itself idle and returns for a last look.
                assert await runtime.fetch_orchestrations(10, 30.0) == []
                await runtime.wait("orchestrations", 30.0)
                assert await _idle(runtime)
                # Idle: a start notifies it again and wakes its wait.
                waiting = asyncio.create_task(runtime.wait("orchestrations", 30.0))
                await asyncio.sleep(0.1)
                await client.create_instance(Kit.new("third"))
                await asyncio.wait_for(waiting, 10.0)
                assert await _heard(ear, 2.0) == 1
            finally:
                await ear.close()

    assert BUSY_POLL < 1.0
    asyncio.run(body())


def test_start_racing_the_runtime_going_idle_is_not_lost() -> None:
    """The start holds its home's row FOR SHARE until it commits: marking
    the runtime idle waits for it, so the runtime's last look sees it."""

    async def body() -> None:
        async with _pair() as (runtime, client):
            assert await runtime.fetch_orchestrations(10, 30.0) == []
            await client.create_instance(Kit.new("warm"))
            assert len(await runtime.fetch_orchestrations(10, 30.0)) == 1
            assert not await _idle(runtime)
            # A start, written but not committed yet (its statement took the
            # home's row FOR SHARE and, seeing the home busy, no NOTIFY).
            async with runtime._connection() as conn, conn.transaction():
                await conn.execute(
                    client._sql.create_instance,
                    {**create_params(Kit.new("racer")), **client._wake_params},
                )
                for _ in range(BUSY_POLLS):
                    await runtime.wait("orchestrations", 30.0)
                # Going idle waits for the start to commit.
                going = asyncio.create_task(runtime.wait("orchestrations", 30.0))
                done, _ = await asyncio.wait({going}, timeout=0.5)
                assert not done
            await asyncio.wait_for(going, 10.0)
            assert await _idle(runtime)
            # The last look after going idle finds the start.
            taken = await runtime.fetch_orchestrations(10, 30.0)
            assert [i.instance.instance_id for i in taken] == ["racer"]

    asyncio.run(body())


def test_endings_are_notified_only_while_a_client_waits() -> None:
    async def body() -> None:
        async with _pair() as (runtime, client):
            ear = await _ear(runtime, client._channels["instances"])
            try:

                async def finish(iid: str) -> None:
                    await client.create_instance(Kit.new(iid))
                    while not (items := await runtime.fetch_orchestrations(10, 30)):
                        await asyncio.sleep(0.01)
                    done = Kit.turn(items[0], "done", status="Completed")
                    assert await runtime.commit_turns([done]) == [True]

                # Nobody waits: neither the start nor the end is announced.
                await finish("alone")
                assert await _heard(ear, 0.5) == 0
                # A client waits (its first wait registers it): an end is.
                waiter = PostgresProvider(_url(), schema=client.schema)
                await waiter.open()
                await waiter.wait("instances", 0.0)
                await finish("watched")
                assert await _heard(ear, 2.0) == 1
                # It left: quiet again.
                await waiter.close()
                await finish("after")
                assert await _heard(ear, 0.5) == 0
            finally:
                await ear.close()

    asyncio.run(body())


def test_a_first_wait_listens_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A provider LISTENs on a channel from its first wait on it. The LISTEN
    # used to be sent only when the listener's current wait for
    # notifications ended (every 0.25 s), so a client's first wait for an
    # instance sat that out although the instance had long finished. With
    # the listener's turns made 60 s long, the old code took a minute here.
    monkeypatch.setattr("perdure.providers._pg_listen._TURN", 60.0)

    async def body() -> None:
        # Every first wait here (the runtime's in _pair, the client's) must
        # be quick: together well under one turn.
        async with asyncio.timeout(20.0), _pair() as (runtime, client):
            await client.wait("instances", 0.0)
            assert client._listener is not None
            assert client._listener.hears("instances")
            # And what it now hears wakes it: an ending, notified to waiters.
            await client.create_instance(Kit.new("x"))
            items = await runtime.fetch_orchestrations(10, 30)
            done = Kit.turn(items[0], "done", status="Completed")
            waiting = asyncio.create_task(client.wait("instances", 30.0))
            await asyncio.sleep(0.1)
            assert await runtime.commit_turns([done]) == [True]
            await waiting

    asyncio.run(body())
