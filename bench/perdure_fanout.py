"""Workload B ("fanout") on perdure: 1 orchestration, N activities joined.

Usage: python perdure_fanout.py N [--mem] [--oc K] [--ac K] [--poll S]
Prints one JSON line. Wall time = start_orchestration -> completion seen.
"""

from __future__ import annotations

import asyncio
import sys

import _common as c

import perdure


@perdure.orchestration(name="fanout")
async def fanout(ctx: perdure.OrchestrationContext, n: int) -> int:
    results = await ctx.join([ctx.schedule_activity("inc", i) for i in range(n)])
    return sum(results)


async def main() -> None:
    args = c.parser(__doc__).parse_args()
    with c.storage(args, "fanout") as url:
        async with c.runtime(
            url, args, orchestrations=[fanout], activities=[c.inc(args)]
        ) as rt:
            with c.Profiler(args.profile):
                t0 = c.now()
                await rt.client.start_orchestration("fan-1", "fanout", args.n)
                st = await rt.client.wait_for_orchestration("fan-1", 600)
                t1 = c.now()
    expect = args.n * (args.n + 1) // 2
    ok = st.status == "Completed" and st.output == expect
    if not ok:
        print("BAD", st.status, st.output, st.error, file=sys.stderr)
    wall = t1 - t0
    c.emit(
        {
            "peer": "perdure",
            "workload": "fanout",
            "n": args.n,
            **c.options(args),
            "wall_s": round(wall, 4),
            "acts_per_s": round(args.n / wall, 2),
            "errors": 0 if ok else 1,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
