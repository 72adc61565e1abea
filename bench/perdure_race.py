"""Workload C ("race") on perdure: N orchestrations, activity vs 60 s timer.

Each orchestration races one activity against a 60 s durable timer with
``ctx.select2`` and returns the winner; the losing timer is cancelled, so
nothing waits 60 s.

Usage: python perdure_race.py N [--mem] [--oc K] [--ac K] [--poll S]
Prints one JSON line. Wall time = first start -> last completion seen.
"""

from __future__ import annotations

import asyncio
import sys

import _common as c

import perdure


@perdure.orchestration(name="race")
async def race(ctx: perdure.OrchestrationContext, x: int) -> str:
    index, _ = await ctx.select2(
        ctx.schedule_activity("inc", x), ctx.schedule_timer(60)
    )
    return "activity" if index == 0 else "timer"


async def main() -> None:
    args = c.parser(__doc__).parse_args()
    with c.storage(args, "race") as url:
        async with c.runtime(
            url, args, orchestrations=[race], activities=[c.inc(args)]
        ) as rt:
            client = rt.client
            ids = [f"race-{i}" for i in range(args.n)]
            with c.Profiler(args.profile):
                t0 = c.now()
                for i, iid in enumerate(ids):
                    await client.start_orchestration(iid, "race", i)
                t_started = c.now()
                bad = 0
                for iid in ids:
                    st = await client.wait_for_orchestration(iid, 600)
                    if st.status != "Completed" or st.output != "activity":
                        bad += 1
                        print(
                            "BAD", iid, st.status, st.output, st.error, file=sys.stderr
                        )
                t1 = c.now()
    wall = t1 - t0
    c.emit(
        {
            "peer": "perdure",
            "workload": "race",
            "n": args.n,
            **c.options(args),
            "wall_s": round(wall, 4),
            "start_phase_s": round(t_started - t0, 4),
            "orch_per_s": round(args.n / wall, 2),
            "errors": bad,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
