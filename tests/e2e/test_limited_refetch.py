"""A slot freed under a concurrency limit is used at once, not at the next poll.

Nothing notifies a worker that a limited activity's lease went away, so the
worker that finished it fetches again right after; before, a limit of 3 on
0.2 s activities ran 3 per poll interval across 3 processes (3/s against an
ideal 15/s, `bench/limits.py`). Here one activity at a time, a poll interval
of 60 s: six in a row must not take six polls.
"""

from __future__ import annotations

from _helpers import WAIT, runtime

import perdure
from perdure import OrchestrationContext


@perdure.activity(name="OneAtATime", concurrency=1)
async def one_at_a_time(_: perdure.ActivityContext, n: int) -> int:
    return n


@perdure.orchestration(name="SixLimited")
async def six_limited(ctx: OrchestrationContext) -> int:
    done = await ctx.join(*(ctx.schedule_activity(one_at_a_time, n) for n in range(6)))
    return sum(done)


async def test_a_freed_limited_slot_is_fetched_again_at_once(storage_url: str) -> None:
    async with runtime(
        storage_url, [six_limited], [one_at_a_time], poll_interval=60.0
    ) as rt:
        await rt.client.start_orchestration("six", six_limited)
        state = await rt.client.wait_for_orchestration("six", timeout=WAIT)
    assert (state.status, state.output) == ("Completed", 15)
