"""Workload D ("longhistory") on perdure: 1 orchestration, M sequential activities.

Reports total wall, mean ms/activity and ms/activity over the first and last
10 % of steps (from in-process activity timestamps), to expose any growth of
the per-turn cost with history length. With the instance cache (default) a
turn costs O(new events); ``--cache 0`` forces a full replay every turn.

Usage: python perdure_longhistory.py M [--mem] [--oc K] [--ac K] [--poll S]
"""

from __future__ import annotations

import asyncio
import sys

import _common as c

import perdure

stamps: list[float] = []


@perdure.activity
def inc(ctx: perdure.ActivityContext, x: int) -> int:
    stamps.append(c.now())
    return x + 1


@perdure.activity(name="inc")
async def inc_async(ctx: perdure.ActivityContext, x: int) -> int:
    stamps.append(c.now())
    return x + 1


@perdure.orchestration(name="long")
async def long_orch(ctx: perdure.OrchestrationContext, m: int) -> int:
    x = 0
    for _ in range(m):
        x = await ctx.schedule_activity("inc", x)
    return x


async def main() -> None:
    args = c.parser(__doc__, "m").parse_args()
    with c.storage(args, "long") as url:
        async with c.runtime(
            url,
            args,
            orchestrations=[long_orch],
            activities=[inc_async if args.async_acts else inc],
        ) as rt:
            with c.Profiler(args.profile):
                t0 = c.now()
                await rt.client.start_orchestration("long-1", "long", args.m)
                st = await rt.client.wait_for_orchestration("long-1", 3600)
                t1 = c.now()
            history_events = len(await rt.client.get_history("long-1"))
    ok = st.status == "Completed" and st.output == args.m
    if not ok:
        print("BAD", st.status, st.output, st.error, file=sys.stderr)
    wall = t1 - t0
    k = max(1, len(stamps) // 10)
    first = (stamps[k] - stamps[0]) / k * 1000 if len(stamps) > k else None
    last = (stamps[-1] - stamps[-1 - k]) / k * 1000 if len(stamps) > k else None
    c.emit(
        {
            "peer": "perdure",
            "workload": "longhistory",
            "m": args.m,
            **c.options(args),
            "wall_s": round(wall, 4),
            "ms_per_act": round(wall / args.m * 1000, 3),
            "ms_per_act_first10pct": round(first, 3) if first else None,
            "ms_per_act_last10pct": round(last, 3) if last else None,
            "history_events": history_events,
            "errors": 0 if ok else 1,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
