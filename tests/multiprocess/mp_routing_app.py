"""A runtime process for the multi-process routing tests (docs/routing.md).

``python mp_routing_app.py URL [--tags gpu] [--without rare] [--lock 2.0]``
runs one runtime on URL until SIGTERM, printing ``ready`` once started.

Every activity records its run in the database (schema of URL), so the
test reads one clock and one order for all processes:

* ``routing_runs(kind, pid, n, claimed_at)``: one row per run; for the
  rate-limited activity, ``claimed_at`` is the database time of the fetch
  that took it (its lease end minus the lease, read before the first
  renewal could move it).
* ``routing_counter(running, top)``: how many limited activities run right
  now, and the most that ever did (updated atomically, so ``top`` is the
  true maximum over every process).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import psycopg

import perdure
from perdure import ActivityContext, OrchestrationContext

CONCURRENCY = 3
RATE = (10, 2.0)
SETUP = (
    "BEGIN; SELECT pg_advisory_xact_lock(4242);"
    "CREATE TABLE IF NOT EXISTS {s}.routing_runs (kind text, pid int, n int,"
    " claimed_at float8);"
    "CREATE TABLE IF NOT EXISTS {s}.routing_counter (running int, top int);"
    "INSERT INTO {s}.routing_counter SELECT 0, 0"
    " WHERE NOT EXISTS (SELECT 1 FROM {s}.routing_counter); COMMIT"
)

_url = ""
_schema = ""
_lock = 2.0
_conn: psycopg.AsyncConnection[Any] | None = None
_guard = asyncio.Lock()


async def _sql(sql: str, *params: Any) -> list[Any]:
    global _conn
    async with _guard:
        if _conn is None:
            _conn = await psycopg.AsyncConnection.connect(_url, autocommit=True)
        text = sql.replace("{s}", f'"{_schema}"')
        cursor = await _conn.execute(text, params or None)
        return await cursor.fetchall() if cursor.description else []


async def _record(kind: str, n: int, claimed_at: float | None = None) -> None:
    await _sql(
        "INSERT INTO {s}.routing_runs VALUES (%s, %s, %s, %s)",
        kind,
        os.getpid(),
        n,
        claimed_at,
    )


@perdure.activity(concurrency=CONCURRENCY)
async def capped(ctx: ActivityContext, n: int) -> int:
    await _sql(
        "UPDATE {s}.routing_counter SET running = running + 1,"
        " top = greatest(top, running + 1)"
    )
    try:
        await _record("capped", n)
        await asyncio.sleep(0.2)
    finally:
        await _sql("UPDATE {s}.routing_counter SET running = running - 1")
    return os.getpid()


@perdure.activity(rate_limit=RATE)
async def rated(ctx: ActivityContext, n: int) -> int:
    rows = await _sql(
        "SELECT visible_at FROM {s}.activities WHERE instance_id = %s"
        " AND event_id = %s",
        ctx.instance_id,
        ctx._event_id,
    )
    await _record("rated", n, rows[0][0] - _lock)
    return os.getpid()


@perdure.activity
async def where(ctx: ActivityContext, n: int) -> int:
    await _record("where", n)
    return os.getpid()


@perdure.activity
async def rare(ctx: ActivityContext, n: int) -> int:
    await _record("rare", n)
    return os.getpid()


@perdure.activity
async def step(ctx: ActivityContext, n: int) -> int:
    await _record("step", n)
    await asyncio.sleep(0.2)
    return os.getpid()


@perdure.orchestration
async def fan(ctx: OrchestrationContext, plan: dict[str, Any]) -> list[int]:
    """Run ``plan["count"]`` activities ``plan["name"]`` at once (``tag``)."""
    return await ctx.join(
        [
            ctx.schedule_activity(plan["name"], i, tag=plan.get("tag"))
            for i in range(plan["count"])
        ]
    )


@perdure.orchestration
async def steps(ctx: OrchestrationContext, count: int) -> list[int]:
    """Run *count* activities one after the other, in session ``s-1``."""
    return [await ctx.schedule_activity(step, i, session="s-1") for i in range(count)]


async def serve(url: str, tags: list[str], without: list[str], slots: int) -> None:
    """Run a runtime on *url* until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    activities = [
        a for a in (capped, rated, where, rare, step) if a.__name__ not in without
    ]
    async with perdure.Runtime(
        url,
        orchestrations=[fan, steps],
        activities=activities,
        lock_timeout=_lock,
        poll_interval=0.2,
        activity_concurrency=slots,
        activity_tags=tags,
    ):
        await _sql(SETUP)  # once the runtime made the schema
        print("ready", flush=True)
        await stop.wait()


def _option(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


if __name__ == "__main__":
    _url, _, query = sys.argv[1].partition("?")
    _schema = query.removeprefix("schema=")
    extra = sys.argv[2:]
    _lock = float((_option(extra, "--lock") or ["2.0"])[0])
    _slots = int((_option(extra, "--slots") or ["10"])[0])
    asyncio.run(
        serve(
            sys.argv[1],
            _option(extra, "--tags"),
            _option(extra, "--without"),
            _slots,
        )
    )
