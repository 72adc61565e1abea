"""Schedule drift: how late a schedule's runs start after their slots.

Usage: python schedule_drift.py [N] [--url URL] [--cron] [--poll S]

One process: a Runtime with default options and a schedule every 1 s (or
``--cron '* * * * * *'``, cron with a seconds field) starting ``drift_run``,
until N runs (default 60) have completed. Per run, three latencies from its
slot (the fire time in its instance id), in milliseconds:

* ``fired``: slot -> the run's instance created (the schedule's timer
  fired and its fire turn committed);
* ``started``: slot -> the run's first turn executing (``time.time()`` in
  its body, which runs once: it has no await);
* ``first_turn``: ``started`` - ``fired`` (the run's own queue wait).

Each is reported as median, p99 and max, with the slots the schedule
skipped or missed (there should be none). Storage: a fresh temporary
SQLite file, or PostgreSQL with ``--url`` (a fresh schema, dropped
afterwards). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from typing import Any

import perdure


@perdure.orchestration(name="drift_run")
async def drift_run(ctx: perdure.OrchestrationContext) -> float:
    # Wall clock on purpose (a benchmark, not a deterministic workflow):
    # the body runs once, in the run's first turn.
    return time.time()


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def measure(url: str, n: int, cron: bool, poll: float) -> dict[str, Any]:
    timetable: dict[str, Any] = {"cron": "* * * * * *"} if cron else {"every": 1}
    async with perdure.Runtime(
        url, orchestrations=[drift_run], poll_interval=poll
    ) as rt:
        client = rt.client
        began = time.perf_counter()
        await client.create_schedule("drift", drift_run, **timetable)
        runs: list[perdure.OrchestrationState[Any]] = []
        while True:
            runs = [
                s
                async for s in client.iter_instances(name="drift_run")
                if s.status == "Completed"
            ]
            if len(runs) >= n:
                break
            await asyncio.sleep(0.2)
        [info] = await client.list_schedules()
        await client.delete_schedule("drift")
        wall = time.perf_counter() - began
    rows = []
    for state in runs:
        slot = datetime.fromisoformat(state.instance_id.split(":", 1)[1]).timestamp()
        rows.append((slot, state.created_at.timestamp() - slot, state.output - slot))
    rows.sort()
    rows = rows[:n]
    grid = round(rows[-1][0] - rows[0][0]) + 1
    return {
        "workload": "schedule_drift",
        "timetable": "cron * * * * * *" if cron else "every 1 s",
        "n": len(rows),
        "slots_not_run": grid - len(rows),
        "skipped": info.skipped,
        "fired": summary([r[1] for r in rows]),
        "started": summary([r[2] for r in rows]),
        "first_turn": summary([r[2] - r[1] for r in rows]),
        "poll_s": poll,
        "wall_s": round(wall, 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("n", type=int, nargs="?", default=60, help="runs (default 60)")
    ap.add_argument("--url", help="PostgreSQL URL (default: a temporary SQLite file)")
    ap.add_argument("--cron", action="store_true", help="cron '* * * * * *'")
    ap.add_argument("--poll", type=float, default=1.0, help="poll_interval s")
    args = ap.parse_args()
    if args.url:
        from perdure.providers.postgres import PostgresProvider

        schema = f"perdure_bench_{uuid.uuid4().hex[:10]}"
        url = f"{args.url}{'&' if '?' in args.url else '?'}schema={schema}"
        try:
            record = await measure(url, args.n, args.cron, args.poll)
        finally:
            provider = PostgresProvider(url)
            await provider.open()
            await provider.drop_schema()
            await provider.close()
        record["storage"] = "postgres"
    else:
        tmp = tempfile.mkdtemp(prefix="perdure-drift-")
        try:
            url = "sqlite:///" + os.path.join(tmp, "perdure.db")
            record = await measure(url, args.n, args.cron, args.poll)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        record["storage"] = "sqlite-file"
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
