"""Workload A ("chain") on perdure: N orchestrations x 3 sequential activities.

Usage: python perdure_chain.py N [--mem] [--oc K] [--ac K] [--poll S]
Prints one JSON line. Wall time = first start_orchestration -> last
completion seen (the client waits for each instance in order, like the
peer scripts).
"""

from __future__ import annotations

import asyncio
import sys

import _common as c

import perdure


@perdure.orchestration(name="chain")
async def chain(ctx: perdure.OrchestrationContext, x: int) -> int:
    x = await ctx.schedule_activity("inc", x)
    x = await ctx.schedule_activity("inc", x)
    return await ctx.schedule_activity("inc", x)


async def main() -> None:
    args = c.parser(__doc__).parse_args()
    with c.storage(args, "chain") as url:
        async with c.runtime(
            url, args, orchestrations=[chain], activities=[c.inc(args)]
        ) as rt:
            client = rt.client
            ids = [f"chain-{i}" for i in range(args.n)]
            with c.Profiler(args.profile):
                t0 = c.now()
                for i, iid in enumerate(ids):
                    await client.start_orchestration(iid, "chain", i)
                t_started = c.now()
                bad = 0
                for i, iid in enumerate(ids):
                    st = await client.wait_for_orchestration(iid, 600)
                    if st.status != "Completed" or st.output != i + 3:
                        bad += 1
                        print(
                            "BAD", iid, st.status, st.output, st.error, file=sys.stderr
                        )
                t1 = c.now()
    wall = t1 - t0
    c.emit(
        {
            "peer": "perdure",
            "workload": "chain",
            "n": args.n,
            **c.options(args),
            "wall_s": round(wall, 4),
            "start_phase_s": round(t_started - t0, 4),
            "orch_per_s": round(args.n / wall, 2),
            "acts_per_s": round(3 * args.n / wall, 2),
            "errors": bad,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
