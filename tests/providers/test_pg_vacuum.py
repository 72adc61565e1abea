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


async def test_grown_tables_are_analyzed_so_plans_are_made_again(pg_url: str) -> None:
    # Regression (issue 17): with autovacuum off nothing invalidated the
    # generic plan of a prepared fetch made while "instances" held a few
    # rows: it went on scanning the whole table (127 ms a fetch at 300,000
    # instances instead of 6.5 ms). An ANALYZE of a table invalidates every
    # plan that reads it.
    from perdure.providers._pg_vacuum import analyze_grown
    from perdure.providers.postgres import PostgresProvider

    schema = f"perdure_an_{uuid.uuid4().hex[:10]}"
    provider = PostgresProvider(pg_url, schema=schema)
    await provider.open()
    try:
        async with provider._connection() as conn:
            await conn.execute(
                f'INSERT INTO "{schema}".instances (instance_id, name,'
                " version, execution_id, status, created_at, updated_at)"
                " SELECT 'x' || g, 'o', '', 1, 'Completed', 0, 0"
                " FROM generate_series(1, 2000) g"
            )
            deadline = time.monotonic() + 20
            grown: list[str] = []
            while "instances" not in grown:  # the counts arrive late
                assert time.monotonic() < deadline, "never analyzed"
                await asyncio.sleep(0.2)
                grown = await analyze_grown(conn, schema)
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = %s"
                " AND relname = 'instances' AND last_analyze IS NOT NULL",
                (schema,),
            )
            assert await cursor.fetchone() == (1,)
            # Nothing changed since: nothing to do.
            assert "instances" not in await analyze_grown(conn, schema)
    finally:
        await provider.drop_schema()
        await provider.close()


async def test_first_checks_come_sooner() -> None:
    # Generic plans are made from the statistics of the moment: the first
    # ones, made while the tables were empty, last until an ANALYZE, so the
    # first looks come after 2, 4, 8, 16 s, then every CHECK_EVERY.
    from perdure.providers._pg_vacuum import CHECK_EVERY, QueueVacuum

    delays: list[float] = []
    looked = 0

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 7:
            raise asyncio.CancelledError

    class Failing:
        async def __aenter__(self) -> None:
            nonlocal looked
            looked += 1
            raise OSError("no database here")  # logged; the loop goes on

        async def __aexit__(self, *exc: object) -> None:
            return None

    loop = QueueVacuum("s", Failing, sleep=sleep)  # type: ignore[arg-type]
    loop.start()
    with pytest.raises(asyncio.CancelledError):
        assert loop._task is not None
        await loop._task
    assert delays == [2.0, 4.0, 8.0, 16.0, CHECK_EVERY, CHECK_EVERY, CHECK_EVERY]
    assert looked == 6
