"""One unwritable value fails the call that made it, never its neighbours.

Reproducers of the reliability probe's F1 (an activity result with a lone
surrogate stalled every acknowledgement) and F2 (an orchestration output
with one failed every instance committed in the same batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _helpers import WAIT, runtime

import perdure
from perdure import ActivityContext, OrchestrationContext

LATIN1_NAME = b"caf\xe9.txt".decode("utf-8", "surrogateescape")  # os.listdir()


@perdure.activity(name="ListDir")
async def list_dir(ctx: ActivityContext) -> list[str]:
    return [LATIN1_NAME]


@perdure.activity(name="Step")
async def step(ctx: ActivityContext, i: int) -> int:
    return i


@perdure.orchestration(name="BadResult")
async def bad_result(ctx: OrchestrationContext) -> list[str]:
    return await ctx.schedule_activity(list_dir)


@perdure.orchestration(name="BadOutput")
async def bad_output(ctx: OrchestrationContext) -> str:
    return LATIN1_NAME


@perdure.orchestration(name="Good")
async def good(ctx: OrchestrationContext, n: int) -> int:
    return await ctx.schedule_activity(step, n)


@perdure.orchestration(name="NulName")
async def nul_name(ctx: OrchestrationContext) -> int:
    result: int = await ctx.schedule_activity("Step\x00", 1)
    return result


ALL: list[Callable[..., Any]] = [bad_result, bad_output, good]


async def test_an_unencodable_activity_result_fails_only_its_activity(
    storage_url: str,
) -> None:
    async with runtime(
        storage_url, ALL, [list_dir, step], lock_timeout=1, max_attempts=3
    ) as rt:
        await rt.client.start_orchestration("bad", "BadResult")
        for n in range(5):
            await rt.client.start_orchestration(f"good-{n}", "Good", n)
        bad = await rt.client.wait_for_orchestration("bad", timeout=WAIT)
        goods = [
            await rt.client.wait_for_orchestration(f"good-{n}", timeout=WAIT)
            for n in range(5)
        ]
    assert [s.output for s in goods] == [0, 1, 2, 3, 4]
    assert bad.status == "Failed"
    assert bad.error is not None
    assert "lone surrogate" in bad.error.message
    assert bad.error.type == "PayloadError"  # raised by the await in the orchestration


async def one_bad_in_a_batch(url: str, bad: str) -> perdure.ErrorInfo:
    """Queue *bad* and five Good instances, then run them: one fetch, one batch.

    The five must complete; returns the bad instance's error.
    """
    async with perdure.Client(url) as client:
        await client.start_orchestration("bad", bad)
        for n in range(5):
            await client.start_orchestration(f"good-{n}", "Good", n)
    async with runtime(
        url, [*ALL, nul_name], [list_dir, step], lock_timeout=1, max_attempts=3
    ) as rt:
        state = await rt.client.wait_for_orchestration("bad", timeout=WAIT)
        goods = [
            await rt.client.wait_for_orchestration(f"good-{n}", timeout=WAIT)
            for n in range(5)
        ]
    assert [s.output for s in goods] == [0, 1, 2, 3, 4]
    assert state.status == "Failed"
    assert state.error is not None
    return state.error


async def test_an_unencodable_output_fails_only_its_instance(storage_url: str) -> None:
    error = await one_bad_in_a_batch(storage_url, "BadOutput")
    assert error.type == "PayloadError"
    assert "lone surrogate" in error.message


@pytest.mark.parametrize("where", ["input", "event"])
async def test_client_refuses_unencodable_input_and_stores_nothing(
    storage_url: str, where: str
) -> None:
    async with perdure.Client(storage_url) as client:
        if where == "input":
            with pytest.raises(perdure.PayloadError, match="lone surrogate"):
                await client.start_orchestration("x", "Good", LATIN1_NAME)
            assert await client.get_status("x") is None
        else:
            await client.start_orchestration("x", "Good", 1)
            before = await client.get_history("x")
            with pytest.raises(perdure.PayloadError, match="lone surrogate"):
                await client.raise_event("x", "e", {"name": LATIN1_NAME})
            assert await client.get_history("x") == before


async def test_a_nul_in_an_activity_name_fails_only_its_instance(
    storage_url: str,
) -> None:
    # The probe's F2 reproducer on PostgreSQL (text cannot hold NUL): every
    # instance committed in the same batch used to end PoisonMessage.
    error = await one_bad_in_a_batch(storage_url, "NulName")
    assert error.type == "ValueError"
    assert "activity name 'Step\\x00' contains a NUL character" in error.message
