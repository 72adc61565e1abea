"""A client's start wakes one runtime, not all of them (issue 17).

Runtimes that fetch announce themselves in the schema's ``runtimes`` table
(`perdure.providers._pg_members`); a new instance gets a live one as its
home (owner; a busy runtime that keeps up first), so only that runtime is
notified and the others leave it alone for the affinity period. With no runtime
announced (or once the only one has left) starts go to everyone, as before.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from perdure.providers.conformance import Kit


def _url() -> str:
    url = os.environ.get("PERDURE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PERDURE_TEST_POSTGRES_URL is not set")
        pytest.skip("PERDURE_TEST_POSTGRES_URL is not set")
    return url


async def _owners(provider: object, schema: str) -> dict[str, str | None]:
    async with provider._connection() as conn:  # type: ignore[attr-defined]
        cursor = await conn.execute(
            f'SELECT instance_id, owner FROM "{schema}".instances'
        )
        return dict(await cursor.fetchall())


def test_starts_are_homed_on_live_runtimes_and_wake_only_them() -> None:
    url = _url()
    from perdure.providers.postgres import PostgresProvider

    schema = f"perdure_mem_{uuid.uuid4().hex[:10]}"

    async def body() -> None:
        a = PostgresProvider(url, schema=schema)
        b = PostgresProvider(url, schema=schema)
        client = PostgresProvider(url, schema=schema)
        for p in (a, b, client):
            await p.open()
        try:
            # Nobody announced yet: no home, everyone is woken.
            await client.create_instance(Kit.new("before"))
            assert (await _owners(client, schema))["before"] is None
            # A fetch announces a runtime (the first fetch takes "before").
            assert len(await a.fetch_orchestrations(10, 30.0)) == 1
            assert await b.fetch_orchestrations(10, 30.0) == []
            for n in range(40):
                await client.create_instance(Kit.new(f"i{n}"))
            owners = await _owners(client, schema)
            homes = {owners[f"i{n}"] for n in range(40)}
            # Packed on A, busy and keeping up (test_pg_packed_homes.py).
            assert homes == {a._origin}
            # B, woken for none of them, takes none: A's are left to A for
            # the affinity period.
            assert await b.fetch_orchestrations(100, 30.0) == []
            assert len(await a.fetch_orchestrations(100, 30.0)) == 40
            # A leaves (closes): new starts are homed on B alone.
            await a.close()
            for n in range(10):
                await client.create_instance(Kit.new(f"j{n}"))
            owners = await _owners(client, schema)
            assert {owners[f"j{n}"] for n in range(10)} == {b._origin}
        finally:
            for p in (a, b, client):
                await p.close()
            cleanup = PostgresProvider(url, schema=schema)
            await cleanup.open()
            await cleanup.drop_schema()
            await cleanup.close()

    asyncio.run(body())
