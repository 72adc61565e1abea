"""New instances are packed on a runtime that keeps up (issue 17).

A start is homed on a busy runtime that is not behind, else on an idle one,
else on one that is behind, and among equals always on the same one, so a
load one runtime carries stays there and is batched (spread over K
runtimes, each committed and fetched for a trickle: three runtimes on two
cores ran the chain benchmark at 45 % of one). A runtime marks itself
behind when a fetch finds work that waited longer than `LATE`, and keeping
up again below `CAUGHT_UP`; a busy runtime not heard from for `FRESH`
seconds counts as behind (`perdure.providers._pg_members`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from perdure.providers._pg_members import BUSY_POLLS, CAUGHT_UP, FRESH, LATE
from perdure.providers.conformance import Kit
from perdure.providers.postgres import PostgresProvider


@contextlib.asynccontextmanager
async def _cluster(
    url: str, runtimes: int
) -> AsyncIterator[tuple[list[PostgresProvider], PostgresProvider]]:
    """*runtimes* announced runtime providers and a client on a fresh schema."""
    schema = f"perdure_pack_{uuid.uuid4().hex[:10]}"
    client = PostgresProvider(url, schema=schema)
    await client.open()
    members = [PostgresProvider(url, schema=schema) for _ in range(runtimes)]
    try:
        for member in members:
            await member.open()
            await member.wait("orchestrations", 0.0)  # hears notifications
            assert await member.fetch_orchestrations(10, 30.0) == []  # announces
        yield members, client
    finally:
        for member in members:
            await member.close()
        await client.drop_schema()
        await client.close()


async def _sql(provider: PostgresProvider, sql: str, *args: object) -> list[Any]:
    async with provider._connection() as conn:
        cursor = await conn.execute(sql.replace("{s}", f'"{provider.schema}"'), args)
        return await cursor.fetchall() if cursor.description else []


async def _home(client: PostgresProvider, iid: str) -> str:
    await client.create_instance(Kit.new(iid))
    [(owner,)] = await _sql(
        client, "SELECT owner FROM {s}.instances WHERE instance_id = %s", iid
    )
    return str(owner)


async def _flags(provider: PostgresProvider) -> tuple[bool, bool]:
    [(idle, behind)] = await _sql(
        provider,
        "SELECT idle, behind FROM {s}.runtimes WHERE origin = %s",
        provider._origin,
    )
    return bool(idle), bool(behind)


async def _set(provider: PostgresProvider, idle: bool, behind: bool) -> None:
    await _sql(
        provider,
        "UPDATE {s}.runtimes SET idle = %s, behind = %s WHERE origin = %s",
        idle,
        behind,
        provider._origin,
    )


def test_a_start_goes_to_a_busy_runtime_that_keeps_up(pg_url: str) -> None:
    async def body() -> None:
        async with _cluster(pg_url, 2) as (members, client):
            # Among equals, always the same one (md5 of its name).
            first, second = sorted(
                members, key=lambda m: hashlib.md5(m._origin.encode()).hexdigest()
            )
            assert await _flags(first) == await _flags(second) == (True, False)
            assert await _home(client, "a") == await _home(client, "b") == first._origin
            # A busy runtime that keeps up first...
            await _set(second, idle=False, behind=False)
            assert await _home(client, "c") == second._origin
            # ...if it was heard from lately: else it may have died, and
            # counts as behind.
            await _sql(
                second,
                "UPDATE {s}.runtimes SET seen_at = seen_at - %s WHERE origin = %s",
                FRESH + 1.0,
                second._origin,
            )
            assert await _home(client, "stale") == first._origin
            await _sql(
                second,
                "UPDATE {s}.runtimes SET seen_at = seen_at + %s WHERE origin = %s",
                FRESH + 1.0,
                second._origin,
            )
            assert await _home(client, "fresh") == second._origin
            # ...then an idle one, before one that is behind...
            await _set(second, idle=False, behind=True)
            assert await _home(client, "d") == first._origin
            # ...which is still better than nothing.
            await _set(first, idle=False, behind=True)
            assert await _home(client, "e") == first._origin
            await _set(first, idle=False, behind=False)
            assert await _home(client, "f") == first._origin

    asyncio.run(body())


def test_a_runtime_is_behind_when_its_work_waited_and_not_once_caught_up(
    pg_url: str,
) -> None:
    async def body() -> None:
        async with _cluster(pg_url, 1) as ([runtime], client):
            # Work that waited longer than LATE: the fetch marks it behind.
            await client.create_instance(Kit.new("old"))
            await asyncio.sleep(LATE + 0.2)
            assert len(await runtime.fetch_orchestrations(10, 30.0)) == 1
            assert await _flags(runtime) == (False, True)
            members = runtime._members
            # Between the thresholds nothing changes (no flapping)...
            await members.pace((LATE + CAUGHT_UP) / 2)
            assert await _flags(runtime) == (False, True)
            # ...below CAUGHT_UP it keeps up again...
            await members.pace(CAUGHT_UP / 2)
            assert await _flags(runtime) == (False, False)
            await members.pace((LATE + CAUGHT_UP) / 2)
            assert await _flags(runtime) == (False, False)
            # ...and a fresh start fetched at once does not make it behind.
            await client.create_instance(Kit.new("new"))
            assert len(await runtime.fetch_orchestrations(10, 30.0)) == 1
            assert await _flags(runtime) == (False, False)
            # Going idle clears both: an idle runtime is not behind.
            await members.pace(LATE + 1.0)
            assert await _flags(runtime) == (False, True)
            for _ in range(BUSY_POLLS + 1):
                assert await runtime.fetch_orchestrations(10, 30.0) == []
                await runtime.wait("orchestrations", 30.0)
            assert await _flags(runtime) == (True, False)

    asyncio.run(body())


def test_a_behind_runtime_sends_new_starts_to_the_next_one(pg_url: str) -> None:
    async def body() -> None:
        async with _cluster(pg_url, 2) as (members, client):
            home = await _home(client, "first")
            busy = next(m for m in members if m._origin == home)
            other = next(m for m in members if m is not busy)
            await asyncio.sleep(LATE + 0.2)
            assert len(await busy.fetch_orchestrations(10, 30.0)) == 1
            assert await _flags(busy) == (False, True)
            # Behind: the next start goes to the other runtime, which
            # keeps up once it has fetched it...
            assert await _home(client, "second") == other._origin
            assert len(await other.fetch_orchestrations(10, 30.0)) == 1
            assert await _home(client, "third") == other._origin
            # The first one, given nothing new, runs dry and goes idle,
            # which clears its mark; a busy runtime that keeps up still
            # ranks before it...
            for _ in range(BUSY_POLLS + 1):
                assert await busy.fetch_orchestrations(10, 30.0) == []
                await busy.wait("orchestrations", 30.0)
            assert await _flags(busy) == (True, False)
            assert await _home(client, "fourth") == other._origin
            # ...until that one is behind in turn.
            await other._members.pace(LATE + 1.0)
            assert await _home(client, "fifth") == busy._origin

    asyncio.run(body())
