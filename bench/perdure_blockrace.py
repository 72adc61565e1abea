"""Workload E ("blockrace") on perdure: N orchestrations, each races two blocks.

  block A: inc, inc, inc                   -> x+3 (must win)
  block B: inc, 60 s durable timer, inc    -> must lose and be cancelled

Each block is an inline ``durable_async`` task scope inside ONE orchestration
(one instance, one history per race; the peers need a sub-orchestration or
child workflow per block). ``ctx.select2`` returns the winner and cancels the
loser's in-flight work (its 60 s timer), so nothing waits 60 s.

Usage: python perdure_blockrace.py N [--mem] [--oc K] [--ac K] [--poll S]
Prints one JSON line. Wall time = first start -> last completion seen. After
the timed window it reads every history (untimed) and counts the races whose
loser timer was cancelled (``TimerCancelled``) and the history events.
"""

from __future__ import annotations

import asyncio
import sys

import _common as c

import perdure
from perdure import durable_async


async def block_a(ctx: perdure.OrchestrationContext, x: int) -> int:
    x = await ctx.schedule_activity("inc", x)
    x = await ctx.schedule_activity("inc", x)
    return await ctx.schedule_activity("inc", x)


async def block_b(ctx: perdure.OrchestrationContext, x: int) -> int:
    x = await ctx.schedule_activity("inc", x)
    await ctx.schedule_timer(60)
    return await ctx.schedule_activity("inc", x)


@perdure.orchestration(name="blockrace")
async def blockrace(ctx: perdure.OrchestrationContext, x: int) -> object:
    a = durable_async(ctx, block_a(ctx, x))
    b = durable_async(ctx, block_b(ctx, x))
    index, value = await ctx.select2(a, b)
    return value if index == 0 else {"b_won": value}


async def main() -> None:
    args = c.parser(__doc__, size=300).parse_args()
    with c.storage(args, "blockrace") as url:
        async with c.runtime(
            url, args, orchestrations=[blockrace], activities=[c.inc(args)]
        ) as rt:
            client = rt.client
            ids = [f"blockrace-{i}" for i in range(args.n)]
            with c.Profiler(args.profile):
                t0 = c.now()
                for i, iid in enumerate(ids):
                    await client.start_orchestration(iid, "blockrace", i)
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
            # Untimed: did every loser get its 60 s timer cancelled?
            events = cancelled = 0
            for iid in ids:
                history = await client.get_history(iid)
                events += len(history)
                cancelled += any(e.type == "TimerCancelled" for e in history)
    wall = t1 - t0
    c.emit(
        {
            "peer": "perdure",
            "workload": "blockrace",
            "n": args.n,
            **c.options(args),
            "wall_s": round(wall, 4),
            "start_phase_s": round(t_started - t0, 4),
            "orch_per_s": round(args.n / wall, 2),
            "instances": args.n,
            "history_events": events,
            "losers_cancelled": cancelled,
            "errors": bad,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
