"""DESIGN §8 on the real runtime: stubborn code cannot freeze it or outlive
``Client.cancel_instance``.

A task cancelled while running that keeps swallowing `Cancelled` used to
spin inside a turn, freezing the whole process (every instance, the
activity worker, the client). The scenario therefore runs in a thread with
its own event loop, so that a regression fails the test instead of hanging
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from _helpers import WAIT, check_replay, outcome, runtime

import perdure
from perdure import Cancelled, OrchestrationContext, durable_async


@perdure.activity(name="Echo")
async def echo(ctx: perdure.ActivityContext, value: Any) -> Any:
    return value


@perdure.orchestration(name="Stubborn")
async def stubborn(ctx: OrchestrationContext) -> str:
    me: dict[str, Any] = {}

    async def block() -> None:
        never = ctx.schedule_wait("never")
        await ctx.schedule_activity(echo, "step")
        me["task"].cancel()  # cancelled while it is running
        while True:
            with contextlib.suppress(Cancelled):
                await never

    me["task"] = durable_async(ctx, block())
    # The activity's answer must come before the timer in the cached and
    # the replayed run alike (their histories are compared): 0.2 s was too
    # short for a fully replayed turn on a loaded machine.
    await ctx.schedule_timer(1.0)
    return "stubborn done"


@perdure.orchestration(name="Hello")
async def hello(ctx: OrchestrationContext, name: str) -> str:
    return str(await ctx.schedule_activity(echo, f"hello {name}"))


def in_thread(seconds: float, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``make()`` on a fresh event loop in a thread, bounded by *seconds*."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the runtime is still stuck after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


async def next_to_hello(client: perdure.Client, iid: str) -> Any:
    await client.start_orchestration(iid, "Stubborn")
    await client.start_orchestration(f"{iid}-hello", "Hello", "world")
    greeted = await client.wait_for_orchestration(f"{iid}-hello", timeout=WAIT)
    state = await client.wait_for_orchestration(iid, timeout=WAIT)
    return [outcome(greeted), outcome(state)]


def test_stubborn_task_does_not_freeze_the_runtime(storage_url: str) -> None:
    summary, history = in_thread(
        60,
        lambda: check_replay(
            storage_url, [stubborn, hello], [echo], next_to_hello, "stubborn"
        ),
    )
    assert summary == [
        {"status": "Completed", "output": "hello world", "error": None},
        {"status": "Completed", "output": "stubborn done", "error": None},
    ]
    assert [e.type for e in history if "Cancel" in e.type] == ["EventWaitCancelled"]


@perdure.orchestration(name="ContinuesOnCancel")
async def continues_on_cancel(ctx: OrchestrationContext, execution: int) -> str:
    try:
        await ctx.schedule_wait("never")
    finally:
        ctx.continue_as_new(execution + 1)


async def test_cancel_instance_cannot_be_defeated_by_continue_as_new(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [continues_on_cancel]) as rt:
        client = rt.client
        await client.start_orchestration("can", "ContinuesOnCancel", 1)
        await client.cancel_instance("can", "operator wants it stopped")
        state = await client.wait_for_orchestration("can", timeout=WAIT)
        assert (state.status, state.execution_id) == ("Cancelled", 1)
        history = await client.get_history("can")
        assert history[-1].type == "OrchestrationCancelled"
