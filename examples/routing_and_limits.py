"""Routing and flow control: tags, sessions, limits and priorities.

Two runtimes share one database, as two machines would: ``cpu`` and
``gpu``, the latter started with ``activity_tags={"gpu"}``. One
orchestration publishes a batch of videos:

- ``Transcode`` is scheduled with ``tag="gpu"``: it runs only on the gpu
  runtime (both register it; each reports where it ran);
- the chunks of one video are stored with ``session=<video>``: all of them
  on the runtime that took the session's first chunk;
- ``Thumbnail`` is declared with ``concurrency=2``: at most two run at
  once over both runtimes, though each would run a hundred;
- ``Notify`` is declared with ``rate_limit=(4, 1.0)``: at most four start in
  any second; the one scheduled with ``priority=10`` goes in the first four.

Run it: ``python examples/routing_and_limits.py``. See docs/routing.md.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

INSTANCE = "publish-1"
VIDEOS = ["intro", "demo", "outro"]
RUNNING = {"now": 0, "most": 0}
NOTIFIED: list[str] = []


def machine(label: str) -> list[Callable[..., Any]]:
    """The activities one runtime registers; those that report *label*."""

    @perdure.activity(name="Transcode")
    async def transcode(ctx: ActivityContext, video: str) -> str:
        return label

    @perdure.activity(name="StoreChunk")
    async def store_chunk(ctx: ActivityContext, chunk: list[Any]) -> str:
        await asyncio.sleep(0.01)
        return label

    return [transcode, store_chunk, thumbnail, notify]


@perdure.activity(name="Thumbnail", concurrency=2)
async def thumbnail(ctx: ActivityContext, video: str) -> None:
    RUNNING["now"] += 1
    RUNNING["most"] = max(RUNNING["most"], RUNNING["now"])
    await asyncio.sleep(0.05)
    RUNNING["now"] -= 1


@perdure.activity(name="Notify", rate_limit=(4, 1.0))
async def notify(ctx: ActivityContext, who: str) -> None:
    NOTIFIED.append(who)


@perdure.orchestration(name="PublishVideos")
async def publish(ctx: OrchestrationContext, videos: list[str]) -> dict[str, Any]:
    gpu = [ctx.schedule_activity("Transcode", v, tag="gpu") for v in videos]
    chunks = {
        v: [ctx.schedule_activity("StoreChunk", [v, i], session=v) for i in range(3)]
        for v in videos
    }
    await ctx.join([ctx.schedule_activity(thumbnail, v) for v in videos * 2])
    people = [f"subscriber-{i}" for i in range(8)]
    await ctx.join(
        [ctx.schedule_activity(notify, p) for p in people]
        + [ctx.schedule_activity(notify, "editor", priority=10)]
    )
    return {
        "transcoded_on": await ctx.join(gpu),
        "chunks_on": {v: sorted(set(await ctx.join(c))) for v, c in chunks.items()},
    }


async def run(db_url: str) -> dict[str, Any]:
    """Publish the videos with both runtimes up; return what happened where."""
    RUNNING.update(now=0, most=0)
    NOTIFIED.clear()
    async with (
        perdure.Runtime(
            db_url, orchestrations=[publish], activities=machine("cpu")
        ) as cpu,
        perdure.Runtime(db_url, activities=machine("gpu"), activity_tags={"gpu"}),
    ):
        await cpu.client.start_orchestration(INSTANCE, publish, VIDEOS)
        state = await cpu.client.wait_for_orchestration(INSTANCE, timeout=60)
    assert state.status == "Completed", state.error
    return {
        **state.output,
        "most_thumbnails_at_once": RUNNING["most"],
        "editor_in_first_four": "editor" in NOTIFIED[:4],
    }


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tmp}/routing.db"
        outcome = await run(url)
    print(f"transcoded on: {outcome['transcoded_on']}")
    for video, where in outcome["chunks_on"].items():
        print(f"chunks of {video!r} stored on: {where}")
    print(f"thumbnails at once, at most: {outcome['most_thumbnails_at_once']}")
    print(f"editor notified among the first four: {outcome['editor_in_first_four']}")


if __name__ == "__main__":
    asyncio.run(main())
