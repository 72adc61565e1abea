"""Soak: a steady mixed workload for minutes, reporting backlog, RSS and dead rows.

Usage: python soak.py [--backend sqlite|postgres] [--rate 300] [--duration 600]
                      [--interval 30] [--url URL] [--durability MODE]
                      [--hold-xmin START LENGTH]

One runtime and its client in this process. A starter task starts ``--rate``
instances per second, in rotation: a chain (3 sequential activities), a race
(an activity against a 60 s timer) and a ``durable_async`` block race (a
two-activity block against a one-activity block); a checker waits for each
and compares its output with the only right answer. Every ``--interval``
seconds one JSON line: instances started and finished so far, the backlog
(started, not finished), wrong answers, this process's RSS, and on
PostgreSQL the dead rows of the queue tables (``pg_stat_user_tables``); at
the end a summary line with the RSS at 120 s and at the end. PostgreSQL:
``--url``, ``PERDURE_DB`` or ``PERDURE_TEST_POSTGRES_URL``, a fresh schema
dropped afterwards; SQLite: a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _common as c

import perdure
from perdure import OrchestrationContext, durable_async


@perdure.activity(name="soak.inc")
async def inc(ctx: perdure.ActivityContext, x: int) -> int:
    return x + 1


@perdure.orchestration(name="soak.chain")
async def chain(ctx: OrchestrationContext, x: int) -> int:
    for _ in range(3):
        x = await ctx.schedule_activity(inc, x)
    return x


@perdure.orchestration(name="soak.race")
async def race(ctx: OrchestrationContext, x: int) -> list[Any]:
    won = await ctx.select(ctx.schedule_activity(inc, x), ctx.schedule_timer(60))
    return list(won)


@perdure.orchestration(name="soak.blockrace")
async def blockrace(ctx: OrchestrationContext, x: int) -> list[Any]:
    async def two() -> int:
        return await ctx.schedule_activity(inc, await ctx.schedule_activity(inc, x))

    async def one() -> int:
        return await ctx.schedule_activity(inc, x + 100)

    won = await ctx.select(durable_async(ctx, one()), durable_async(ctx, two()))
    return list(won)


KINDS = ("soak.chain", "soak.race", "soak.blockrace")


def right(kind: str, x: int, output: Any) -> bool:
    """Whether *output* is the only right answer (blockrace: either block)."""
    if kind == "soak.chain":
        return bool(output == x + 3)
    if kind == "soak.race":
        return bool(output == [0, x + 1])
    return output in ([0, x + 101], [1, x + 2])


async def dead_rows(url: str | None, schema: str | None) -> int | None:
    if url is None or schema is None:
        return None
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables"
            " WHERE schemaname = %s AND relname IN ('messages', 'activities')",
            (schema,),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def hold_xmin(url: str, start: float, length: float) -> None:
    """From *start* s on, hold a snapshot open for *length* s.

    A REPEATABLE READ transaction that has read something keeps the xmin
    horizon back: no VACUUM can remove rows deleted after it began (the
    production case of a forgotten transaction or a long report).
    """
    import psycopg

    await asyncio.sleep(start)
    async with await psycopg.AsyncConnection.connect(url.split("?")[0]) as conn:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await conn.execute("SELECT count(*) FROM pg_class")
        print(json.dumps({"xmin_held_from_s": start}), flush=True)
        await asyncio.sleep(length)
        await conn.execute("ROLLBACK")
        print(json.dumps({"xmin_released_at_s": start + length}), flush=True)


async def soak(
    args: argparse.Namespace, url: str, pg: str | None, schema: str | None
) -> None:
    started = finished = wrong = 0
    pending: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()
    async with perdure.Runtime(
        url, orchestrations=[chain, race, blockrace], activities=[inc]
    ) as rt:
        client = rt.client
        t0 = time.monotonic()
        deadline = t0 + args.duration

        async def starter() -> None:
            nonlocal started
            n = 0
            while time.monotonic() < deadline:
                kind = KINDS[n % len(KINDS)]
                iid = f"soak-{n}"
                await client.start_orchestration(iid, kind, n)
                await pending.put((iid, kind, n))
                started += 1
                n += 1
                ahead = t0 + n / args.rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)

        async def checker() -> None:
            nonlocal finished, wrong
            while True:
                iid, kind, x = await pending.get()
                state = await client.wait_for_orchestration(iid, timeout=600)
                finished += 1
                if state.status != "Completed" or not right(kind, x, state.output):
                    wrong += 1

        checkers = [asyncio.create_task(checker()) for _ in range(50)]
        start_task = asyncio.create_task(starter())
        holder = None
        if pg is not None and args.hold_xmin:
            holder = asyncio.create_task(hold_xmin(pg, *args.hold_xmin))
        rss_120: int | None = None
        next_report = t0 + args.interval
        while time.monotonic() < deadline or finished < started:
            await asyncio.sleep(max(0.0, min(next_report - time.monotonic(), 1.0)))
            now = time.monotonic()
            if rss_120 is None and now - t0 >= 120:
                rss_120 = c.current_rss_kb()
            if now >= next_report:
                next_report += args.interval
                print(json.dumps({
                    "t_s": round(now - t0), "started": started, "finished": finished,
                    "backlog": started - finished, "wrong": wrong,
                    "rss_mb": round(c.current_rss_kb() / 1024, 1),
                    "dead_rows": await dead_rows(pg, schema),
                }), flush=True)  # fmt: skip
            if now > deadline + 600:
                break  # the backlog never drained: reported below
        await start_task
        if holder is not None:
            await holder
        for task in checkers:
            task.cancel()
        print(json.dumps({
            "summary": True, "backend": args.backend, "rate": args.rate,
            "duration_s": args.duration, "started": started, "finished": finished,
            "wrong": wrong, "rss_end_mb": round(c.current_rss_kb() / 1024, 1),
            "rss_120_mb": None if rss_120 is None else round(rss_120 / 1024, 1),
        }), flush=True)  # fmt: skip


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--url", default=None)
    ap.add_argument("--durability", default="power-loss")
    ap.add_argument(
        "--hold-xmin",
        nargs=2,
        type=float,
        metavar=("START", "LENGTH"),
        help="PostgreSQL: hold a snapshot open from START s for LENGTH s",
    )
    args = ap.parse_args()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'soak.db'}"
            if args.durability != "power-loss":
                url += f"?durability={args.durability}"
            await soak(args, url, None, None)
        return
    from perdure.providers.postgres import PostgresProvider

    base = (
        args.url
        or os.environ.get("PERDURE_DB")
        or os.environ.get("PERDURE_TEST_POSTGRES_URL")
    )
    assert base, "--url or PERDURE_TEST_POSTGRES_URL"
    schema = f"soak_{uuid.uuid4().hex[:8]}"
    provider = PostgresProvider(base, schema=schema)
    try:
        await soak(args, provider, base, schema)  # type: ignore[arg-type]
    finally:
        await provider.open()
        await provider.drop_schema()
        await provider.close()


if __name__ == "__main__":
    asyncio.run(main())
