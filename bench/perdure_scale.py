"""Memory at scale: N running instances, each waiting on a 1 h durable timer.

Starts N orchestrations that each schedule a 1 h timer and wait on it, waits
until every one has run its first turn and its commit is visible, then
reports the process RSS (current and peak) and how many live drivers the
instance cache holds (bounded by ``--cache``). The wall time covers start ->
all N waiting.

Usage: python perdure_scale.py N [--cache K] [--mem] [--oc K] [--poll S]
"""

from __future__ import annotations

import asyncio
import gc

import _common as c

import perdure

began = 0


@perdure.orchestration(name="sleeper")
async def sleeper(ctx: perdure.OrchestrationContext, x: int) -> int:
    global began
    if not ctx.is_replaying:
        began += 1
    await ctx.schedule_timer(3600)
    return x


async def main() -> None:
    args = c.parser(__doc__, size=10_000).parse_args()
    with c.storage(args, "scale") as url:
        async with c.runtime(url, args, orchestrations=[sleeper]) as rt:
            client = rt.client
            gc.collect()
            baseline = c.current_rss_kb()
            t0 = c.now()
            for i in range(args.n):
                await client.start_orchestration(f"sleeper-{i}", "sleeper", i)
            t_started = c.now()
            while began < args.n:
                await asyncio.sleep(0.01)
            running = [s async for s in client.iter_instances(status="Running")]
            while (
                sum(1 for s in running if s.updated_at != s.created_at) < args.n
                and c.now() - t0 < 600
            ):
                await asyncio.sleep(0.05)
                running = [s async for s in client.iter_instances(status="Running")]
            t1 = c.now()
            gc.collect()
            waiting_rss = c.current_rss_kb()
            # Bench only: peek at the private LRU (-1 if the engine renamed it).
            cache = getattr(getattr(rt, "_dispatcher", None), "_cache", None)
            cached = -1 if cache is None else len(cache)
    c.emit(
        {
            "peer": "perdure",
            "workload": "timers",
            "n": args.n,
            **c.options(args),
            "wall_s": round(t1 - t0, 4),
            "start_phase_s": round(t_started - t0, 4),
            "waiting": len(running),
            "cached_drivers": cached,
            "rss_baseline_kb": baseline,
            "rss_waiting_kb": waiting_rss,
            "errors": 0 if len(running) == args.n else 1,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
