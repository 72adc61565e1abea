"""Handlers and helpers for the CLI operating tests (list, delete, purge, ...)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import perdure
from perdure import OrchestrationContext


@perdure.orchestration(name="OpChild")
async def op_child(ctx: OrchestrationContext, prefix: Any) -> list[Any]:
    return [prefix, await ctx.schedule_wait("go")]


@perdure.orchestration(name="OpParent")
async def op_parent(ctx: OrchestrationContext, prefix: Any) -> Any:
    child = f"{ctx.instance_id}-child"
    return await ctx.schedule_sub_orchestration(op_child, prefix, instance_id=child)


@perdure.orchestration(name="OpBoom")
async def op_boom(ctx: OrchestrationContext) -> None:
    raise ValueError("boom")


ORCHESTRATIONS: list[Callable[..., Any]] = [op_child, op_parent, op_boom]


async def _settle(url: str, want: Mapping[str, str | None], timeout: float) -> None:
    async with perdure.Runtime(
        url, orchestrations=ORCHESTRATIONS, poll_interval=0.05
    ) as rt:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = {}
            for instance_id in want:
                state = await rt.client.get_status(instance_id)
                got[instance_id] = None if state is None else state.status
            if got == dict(want):
                return
            if loop.time() > deadline:
                raise AssertionError(f"statuses {got}, wanted {dict(want)}")
            await asyncio.sleep(0.02)


def settle(url: str, want: Mapping[str, str | None], timeout: float = 30.0) -> None:
    """Run a Runtime until each instance has the status given (None: gone)."""
    asyncio.run(_settle(url, want, timeout))


def status_of(url: str, instance_id: str) -> perdure.OrchestrationState | None:
    """The instance's state, read with a client of its own."""

    async def go() -> perdure.OrchestrationState | None:
        async with perdure.Client(url) as client:
            return await client.get_status(instance_id)

    return asyncio.run(go())


def history_types(url: str, instance_id: str) -> list[str]:
    """The event types of the instance's latest execution."""

    async def go() -> list[str]:
        async with perdure.Client(url) as client:
            return [e.type for e in await client.get_history(instance_id)]

    return asyncio.run(go())
