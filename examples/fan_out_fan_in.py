"""Fan-out/fan-in: start N activities at once, then join their results.

``ctx.schedule_activity`` schedules the work when it is called, so building
a list of futures starts every activity in parallel. ``ctx.join`` waits for
all of them and returns the results in argument order, whatever order they
finished in. If one failed, ``join`` would cancel the unfinished rest and
raise that failure (``return_exceptions=True`` collects failures instead).

Run it: ``python examples/fan_out_fan_in.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

INSTANCE = "word-count-1"

DOCUMENTS = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "durable execution survives crashes",
    "replay makes orchestrations deterministic",
    "activities do the side effects",
]


@perdure.activity(name="CountWords")
async def count_words(ctx: ActivityContext, text: str) -> int:
    """Pretend this is slow I/O: every document takes a moment."""
    await asyncio.sleep(0.05)
    return len(text.split())


@perdure.activity(name="Publish")
def publish(ctx: ActivityContext, report: dict[str, int]) -> str:
    """A sync activity (it runs in a thread pool)."""
    return f"{report['documents']} documents, {report['words']} words"


@perdure.orchestration(name="WordCount")
async def word_count(ctx: OrchestrationContext, documents: list[str]) -> str:
    """Fan out one CountWords per document, fan in with join, then publish."""
    counts = await ctx.join([ctx.schedule_activity(count_words, d) for d in documents])
    ctx.trace_info(f"per-document counts: {counts}")
    report = {"documents": len(counts), "words": sum(counts)}
    return await ctx.schedule_activity(publish, report)


async def run(db_url: str, **options: Any) -> str:
    """Run one WordCount instance on *db_url*; return its output.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url,
        orchestrations=[word_count],
        activities=[count_words, publish],
        **options,
    ) as rt:
        await rt.client.start_orchestration(INSTANCE, word_count, DOCUMENTS)
        state = await rt.client.wait_for_orchestration(INSTANCE, timeout=30)
    if state.status != "Completed":
        raise RuntimeError(f"{INSTANCE} ended {state.status}: {state.error}")
    return state.output


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(asyncio.run(run(f"sqlite:///{tmp}/fan_out.db")))


if __name__ == "__main__":
    main()
