"""Hello world: an orchestration that calls activities one after another.

The orchestration is a plain ``async def``. Each ``await
ctx.schedule_activity(...)`` records the call in the instance's history and
suspends the orchestration until the activity's result is recorded too. If
the process crashed half-way, a restarted runtime would replay the history
(without re-running finished activities) and carry on from where it stopped.

Run it: ``python examples/hello_world.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

INSTANCE = "hello-1"


@perdure.activity
async def say_hello(ctx: ActivityContext, city: str) -> str:
    """Activities do the side effects; this one only builds a greeting."""
    return f"Hello, {city}!"


@perdure.orchestration(name="HelloCities")
async def hello_cities(ctx: OrchestrationContext, cities: list[str]) -> list[str]:
    """Greet each city in turn: the next call starts after the previous ends."""
    greetings = []
    for city in cities:
        greetings.append(await ctx.schedule_activity(say_hello, city))
    return greetings


async def run(db_url: str, **options: Any) -> list[str]:
    """Run one HelloCities instance on *db_url*; return its output.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url, orchestrations=[hello_cities], activities=[say_hello], **options
    ) as rt:
        await rt.client.start_orchestration(
            INSTANCE, hello_cities, ["Tokyo", "Seattle", "London"]
        )
        state = await rt.client.wait_for_orchestration(INSTANCE, timeout=30)
    if state.status != "Completed":
        raise RuntimeError(f"{INSTANCE} ended {state.status}: {state.error}")
    return state.output


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for greeting in asyncio.run(run(f"sqlite:///{tmp}/hello.db")):
            print(greeting)


if __name__ == "__main__":
    main()
