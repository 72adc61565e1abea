"""Flow-control accuracy on PostgreSQL: limits held across K runtime processes.

Usage: python limits.py [--procs 3] [--url URL] [--jobs 150] [--rated 60]

K runtime subprocesses share a fresh schema. ``capped`` has
``concurrency=3`` and takes 0.2 s; ``rated`` has ``rate_limit=(10, 2.0)``.
Each activity records itself in the database (one clock for every
process): a counter of running ``capped`` activities keeps its true maximum,
and each ``rated`` start the database time of the fetch that took it.
Prints one JSON line: the
maximum concurrency seen against the limit, ``capped`` throughput against
the ideal (limit / duration), the busiest sliding rate window against the
limit, and the rate achieved. The URL comes from ``--url``, ``PERDURE_DB``
or ``PERDURE_TEST_POSTGRES_URL``; the schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from typing import Any

import psycopg

import perdure

LIMIT, DURATION = 3, 0.2
RATE = (10, 2.0)
_url = _schema = ""


async def _sql(sql: str, *params: Any) -> list[Any]:
    async with await psycopg.AsyncConnection.connect(_url, autocommit=True) as c:
        cursor = await c.execute(sql.replace("{s}", f'"{_schema}"'), params or None)
        return await cursor.fetchall() if cursor.description else []


@perdure.activity(name="capped", concurrency=LIMIT)
async def capped(ctx: perdure.ActivityContext, n: int) -> int:
    await _sql(
        "UPDATE {s}.lim_counter SET running = running + 1,"
        " top = greatest(top, running + 1)"
    )
    try:
        await asyncio.sleep(DURATION)
    finally:
        await _sql("UPDATE {s}.lim_counter SET running = running - 1")
    return n


@perdure.activity(name="rated", rate_limit=RATE)
async def rated(ctx: perdure.ActivityContext, n: int) -> int:
    # The limit counts fetches: the fetch that took this item set its lease
    # end to the database time of the fetch plus the lease (30 s, not yet
    # renewed), so that is the time recorded.
    await _sql(
        "INSERT INTO {s}.lim_starts SELECT visible_at - 30.0 FROM {s}.activities"
        " WHERE instance_id = %s AND execution_id = %s AND event_id = %s",
        ctx.instance_id,
        ctx.execution_id,
        ctx._event_id,
    )
    return n


@perdure.orchestration(name="fan")
async def fan(ctx: perdure.OrchestrationContext, plan: list[Any]) -> int:
    name, count = plan
    work = capped if name == "capped" else rated
    done = await ctx.join(*(ctx.schedule_activity(work, i) for i in range(count)))
    return len(done)


async def serve(url: str) -> None:
    global _url, _schema
    base, _, schema = url.rpartition("schema=")
    _url, _schema = base.rstrip("?&"), schema
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with perdure.Runtime(
        url, orchestrations=[fan], activities=[capped, rated], activity_concurrency=10
    ):
        print("ready", flush=True)
        await stop.wait()


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    global _url, _schema
    _url, _schema = args.url, f"bench_lim_{uuid.uuid4().hex[:8]}"
    url = f"{_url}{'&' if '?' in _url else '?'}schema={_schema}"
    await _sql("CREATE SCHEMA {s}")
    await _sql("CREATE TABLE {s}.lim_counter (running int, top int)")
    await _sql("INSERT INTO {s}.lim_counter VALUES (0, 0)")
    await _sql("CREATE TABLE {s}.lim_starts (at float8)")
    procs = []
    try:
        for _ in range(args.procs):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--serve",
                url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert proc.stdout is not None
            await proc.stdout.readline()
            procs.append(proc)
        async with perdure.Client(url) as client:
            t0 = time.perf_counter()
            jobs = [("capped", 10)] * (args.jobs // 10)
            for i, plan in enumerate(jobs):
                await client.start_orchestration(f"c{i}", fan, list(plan))
            for i in range(len(jobs)):
                await client.wait_for_orchestration(f"c{i}", 600)
            capped_s = time.perf_counter() - t0
            for i in range(args.rated // 10):
                await client.start_orchestration(f"r{i}", fan, ["rated", 10])
            for i in range(args.rated // 10):
                await client.wait_for_orchestration(f"r{i}", 600)
        [(top,)] = await _sql("SELECT top FROM {s}.lim_counter")
        starts = sorted(at for (at,) in await _sql("SELECT at FROM {s}.lim_starts"))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*(proc.wait() for proc in procs))
        await _sql("DROP SCHEMA {s} CASCADE")
    count, window = RATE
    busiest = max(sum(1 for s in starts if t - window < s <= t) for t in starts)
    span = starts[-1] - starts[0]
    return {
        "peer": "perdure",
        "workload": "limits",
        "procs": args.procs,
        "concurrency_limit": LIMIT,
        "concurrency_max_seen": top,
        "capped_runs": args.jobs,
        "capped_per_s": round(args.jobs / capped_s, 2),
        "capped_ideal_per_s": LIMIT / DURATION,
        "rate_limit": f"{count} per {window} s",
        "rated_starts": len(starts),
        "busiest_window": busiest,
        # A sliding window admits a full burst at each window's start, so
        # the long-run rate is starts over (span + one window).
        "rate_achieved_per_s": round(len(starts) / (span + window), 3),
        "rate_limit_per_s": count / window,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=150)
    ap.add_argument("--rated", type=int, default=60)
    ap.add_argument(
        "--url",
        default=os.environ.get("PERDURE_DB")
        or os.environ.get("PERDURE_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )
    print(json.dumps(asyncio.run(drive(ap.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
