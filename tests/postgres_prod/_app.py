"""The application of the production tests: a chain, an echo, an event wait.

Run as a script it hosts a runtime until SIGTERM (cross-process tests):
``python _app.py URL [LISTEN_URL]``; it prints ``ready`` once open.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Any

import perdure


@perdure.activity(name="inc")
async def inc(ctx: perdure.ActivityContext, x: int) -> int:
    return x + 1


@perdure.orchestration(name="chain")
async def chain(ctx: perdure.OrchestrationContext, x: int) -> int:
    for _ in range(3):
        x = await ctx.schedule_activity("inc", x)
    return x


@perdure.orchestration(name="echo")
async def echo(ctx: perdure.OrchestrationContext, x: Any) -> Any:
    return x


@perdure.orchestration(name="until_event")
async def until_event(ctx: perdure.OrchestrationContext, name: str) -> Any:
    return await ctx.wait_for_event(name)


ORCHESTRATIONS: list[Callable[..., Any]] = [chain, echo, until_event]
ACTIVITIES: list[Callable[..., Any]] = [inc]


async def _serve(url: str, listen_url: str | None) -> None:
    from perdure.providers.postgres import PostgresProvider

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    provider = PostgresProvider(url, listen_url=listen_url)
    async with perdure.Runtime(
        provider, orchestrations=ORCHESTRATIONS, activities=ACTIVITIES
    ):
        print("ready", flush=True)
        await stop.wait()
    await provider.close()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
