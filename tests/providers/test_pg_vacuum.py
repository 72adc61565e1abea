"""The PostgreSQL provider vacuums its own queue tables when dead rows pile up.

On a server with autovacuum off (like this machine's), every consumed
message and activity leaves a dead row behind; `vacuum_queues` clears them
(issue 17: the queue death spiral).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from perdure.providers.conformance import Kit


async def _dead(conn: object, schema: str) -> int:
    cursor = await conn.execute(  # type: ignore[attr-defined]
        "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables"
        " WHERE schemaname = %s AND relname = 'messages'",
        (schema,),
    )
    row = await cursor.fetchone()
    return int(row[0])


def test_vacuum_clears_dead_queue_rows_one_session_at_a_time() -> None:
    url = os.environ.get("PERDURE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PERDURE_TEST_POSTGRES_URL is not set")
        pytest.skip("PERDURE_TEST_POSTGRES_URL is not set")
    from perdure.providers._pg_vacuum import vacuum_queues
    from perdure.providers.postgres import PostgresProvider

    schema = f"perdure_vac_{uuid.uuid4().hex[:10]}"

    async def body() -> None:
        provider = PostgresProvider(url, schema=schema)
        await provider.open()
        try:
            for n in range(50):  # 50 start messages inserted, then consumed
                await provider.create_instance(Kit.new(f"i{n}"))
            items = await provider.fetch_orchestrations(100, 30.0)
            turns = [Kit.turn(item, "started") for item in items]
            assert all(await provider.commit_turns(turns))
            deadline = time.monotonic() + 20
            async with provider._connection() as conn:
                # The statistics arrive asynchronously (PostgreSQL 15 flushes
                # them about every second).
                while await _dead(conn, schema) < 50:
                    assert time.monotonic() < deadline, "no dead rows counted"
                    await asyncio.sleep(0.2)
                async with provider._connection() as other:
                    key = f"perdure-vacuum:{schema}"
                    await other.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
                    assert await vacuum_queues(conn, schema, dead_rows=1) == []
                    await other.execute(
                        "SELECT pg_advisory_unlock(hashtext(%s))", (key,)
                    )
                assert await vacuum_queues(conn, schema, dead_rows=1_000) == []
                assert await vacuum_queues(conn, schema, dead_rows=1) == ["messages"]
                while await _dead(conn, schema) > 0:
                    assert time.monotonic() < deadline, "still dead rows"
                    await asyncio.sleep(0.2)
        finally:
            await provider.drop_schema()
            await provider.close()

    asyncio.run(body())
