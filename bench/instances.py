"""Listing and purging cost against the number of stored instances (DESIGN §10).

Usage: python instances.py [--backend sqlite|postgres] [--sizes 1000,1000000]
                           [--url URL] [--pages 20]

For each size, a fresh store gets that many finished instances, bulk-loaded
with SQL (creating a million through the API would time the loading, not the
listing): four orchestration names, statuses Completed/Failed/Cancelled and
a few Running, created over 30 days. Then it times, through the public
`perdure.Client`:

* ``first_page_ms``: ``list_instances(limit=100)``;
* ``deep_page_ms``: the 20th page of 100 (following ``next_cursor``);
* ``filtered_ms``: ``list_instances(status="Failed", name="pay", limit=100)``;
* ``range_ms``: ``list_instances(created_before=<day 15>, limit=100)``;
* ``purge_batch_ms``: one ``purge_instances`` batch (1,000 instances ended
  before day 2, with their rows).

Medians over ``--pages`` repetitions (purge: 3 batches). Prints one JSON
line per size. PostgreSQL: ``--url``, ``PERDURE_DB`` or
``PERDURE_TEST_POSTGRES_URL``; a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import perdure
from perdure.providers.sqlite import SqliteProvider

DAY = 86_400.0
NAMES = ("pay", "ship", "refund", "notify")
STATUSES = ("Completed", "Completed", "Completed", "Failed", "Cancelled")


def rows(n: int, origin: float) -> list[tuple[Any, ...]]:
    out = []
    for i in range(n):
        created = origin + 30 * DAY * i / n
        status = "Running" if i % 997 == 0 else STATUSES[i % len(STATUSES)]
        out.append((f"i{i:08}", NAMES[i % 4], "1", status, created, created + 60.0))
    return out


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(samples), 3)


async def measure(client: perdure.Client, origin: float, pages: int) -> dict[str, Any]:
    async def deep() -> None:
        cursor = None
        for _ in range(20):
            page = await client.list_instances(limit=100, cursor=cursor)
            cursor = page.next_cursor

    purged: list[int] = []

    async def purge() -> None:
        purged.append(
            await client._retry.call(  # one batch, as a runtime's retention loop
                lambda: _store(client).purge_instances(
                    statuses=("Completed", "Failed", "Cancelled"),
                    finished_before=origin + 2 * DAY,
                    limit=1000,
                )
            )
        )

    result: dict[str, Any] = {
        "first_page_ms": await timed(lambda: client.list_instances(limit=100), pages),
        "deep_page_ms": round(await timed(deep, max(pages // 5, 1)) / 20, 3),
        "filtered_ms": await timed(
            lambda: client.list_instances(status="Failed", name="pay", limit=100),
            pages,
        ),
        "range_ms": await timed(
            lambda: client.list_instances(created_before=origin + 15 * DAY, limit=100),
            pages,
        ),
        "purge_batch_ms": await timed(purge, 3),
    }
    result["purged_per_batch"] = purged
    return result


def _store(client: perdure.Client) -> Any:
    return client._provider


async def run_sqlite(n: int, pages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        provider = SqliteProvider(str(path))
        await provider.open()
        await provider.close()
        origin = time.time() - 40 * DAY
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "INSERT INTO instances (instance_id, name, version, execution_id,"
                " status, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
                rows(n, origin),
            )
            conn.execute("ANALYZE")
        async with perdure.Client(f"sqlite:///{path}") as client:
            return await measure(client, origin, pages)


async def run_postgres(n: int, pages: int, url: str) -> dict[str, Any]:
    from perdure.providers.postgres import PostgresProvider

    schema = f"bench_inst_{uuid.uuid4().hex[:8]}"
    provider = PostgresProvider(url, schema=schema)
    await provider.open()
    origin = time.time() - 40 * DAY
    try:
        import psycopg

        with psycopg.connect(url) as conn, conn.cursor() as cur:
            with cur.copy(
                f"COPY {schema}.instances (instance_id, name, version, execution_id,"
                " status, created_at, updated_at) FROM STDIN"
            ) as copy:
                for iid, name, version, status, created, updated in rows(n, origin):
                    copy.write_row((iid, name, version, 1, status, created, updated))
            cur.execute(f"ANALYZE {schema}.instances")
        async with perdure.Client(provider) as client:
            return await measure(client, origin, pages)
    finally:
        await provider.drop_schema()
        await provider.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    url = (
        args.url
        or os.environ.get("PERDURE_DB")
        or os.environ.get("PERDURE_TEST_POSTGRES_URL")
    )
    for size in (int(s) for s in args.sizes.split(",")):
        if args.backend == "sqlite":
            result = await run_sqlite(size, args.pages)
        else:
            assert url, "--url or PERDURE_TEST_POSTGRES_URL"
            result = await run_postgres(size, args.pages, url)
        print(json.dumps({"backend": args.backend, "instances": size, **result}))


if __name__ == "__main__":
    asyncio.run(main())
