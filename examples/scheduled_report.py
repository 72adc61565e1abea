"""Schedules: a report that runs every second, durably.

``client.create_schedule`` stores a schedule as a durable instance of the
built-in ``perdure.schedule`` orchestration: it survives restarts and
crashes, and each slot starts at most one run (its instance id is the
schedule id and the slot's time). Here a report runs every second; after
three runs the schedule is paused (the runs stay, with their outputs),
listed, and deleted. Real schedules use ``cron="0 2 * * *"`` and the like
(``pip install "perdure[schedules]"``); see docs/schedules.md.

Run it: ``python examples/scheduled_report.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

SCHEDULE = "order-report"


@perdure.activity(name="CountOrders")
async def count_orders(ctx: ActivityContext, region: str) -> int:
    """Would query the orders database; here a fixed figure per region."""
    return {"eu": 12, "us": 30}.get(region, 0)


@perdure.orchestration(name="Report")
async def report(ctx: OrchestrationContext, regions: list[str]) -> dict[str, int]:
    """Count the orders of each region, in parallel."""
    counts = await ctx.join(*(ctx.schedule_activity(count_orders, r) for r in regions))
    return dict(zip(regions, counts, strict=True))


async def run(db_url: str, runs: int = 3, **options: Any) -> dict[str, Any]:
    """Let the schedule start *runs* reports on *db_url*; return what happened.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url, orchestrations=[report], activities=[count_orders], **options
    ) as rt:
        client = rt.client
        await client.create_schedule(SCHEDULE, report, every=1.0, input=["eu", "us"])
        while True:
            done = [
                s async for s in client.iter_instances(name=report, status="Completed")
            ]
            if len(done) >= runs:
                break
            await asyncio.sleep(0.1)
        await client.pause_schedule(SCHEDULE)
        while not (await client.list_schedules())[0].paused:
            await asyncio.sleep(0.05)
        [info] = await client.list_schedules()
        await client.delete_schedule(SCHEDULE)
        left = await client.list_schedules()
    return {
        "runs": sorted(s.instance_id for s in done),
        "outputs": [s.output for s in done],
        "info": info,
        "left": left,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seen = asyncio.run(run(f"sqlite:///{tmp}/reports.db"))
    info = seen["info"]
    print(f"runs:    {seen['runs']}")
    print(f"outputs: {seen['outputs'][0]}")
    print(f"paused after {info.fires} fires (skipped {info.skipped}); deleted")


if __name__ == "__main__":
    main()
