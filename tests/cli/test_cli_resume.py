"""``perdure resume``, ``cancel`` and ``list --status`` on Suspended instances."""

from __future__ import annotations

import asyncio

import pytest
from _cli_run import run

import perdure


@perdure.activity
def step_a(ctx: perdure.ActivityContext) -> str:
    return "a"


@perdure.orchestration(name="Lookup")
async def buggy(ctx: perdure.OrchestrationContext, table: dict[str, int]) -> int:
    await ctx.schedule_activity(step_a)
    return table["missing"]


@perdure.orchestration(name="Lookup")
async def fixed(ctx: perdure.OrchestrationContext, table: dict[str, int]) -> int:
    await ctx.schedule_activity(step_a)
    return table.get("missing", -1)


async def _suspend(url: str) -> None:
    async with perdure.Runtime(
        url, orchestrations=[buggy], activities=[step_a], suspend_on_error=True
    ) as rt:
        await rt.client.start_orchestration("look", "Lookup", {"x": 1})
        await rt.client.start_orchestration("done", "Lookup", {"missing": 7})
        await rt.client.wait_for_orchestration("done", timeout=20)
        for _ in range(2000):
            state = await rt.client.get_status("look")
            if state is not None and state.status == "Suspended":
                return
            await asyncio.sleep(0.01)
    raise AssertionError("not suspended")


async def _finish(url: str) -> perdure.OrchestrationState:
    async with perdure.Runtime(url, orchestrations=[fixed], activities=[step_a]) as rt:
        return await rt.client.wait_for_orchestration("look", timeout=20)


def test_resume_from_the_command_line(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_suspend(storage_url))
    code, out, _ = run(capsys, "--db", storage_url, "list", "--status", "Suspended")
    assert code == 0 and "look" in out and "done" not in out
    code, out, _ = run(capsys, "--db", storage_url, "status", "look")
    assert code == 0 and "Suspended" in out and "KeyError" in out
    code, _, err = run(capsys, "--db", storage_url, "resume", "done")
    assert code == 1 and "Completed, not Suspended" in err
    code, _, err = run(capsys, "--db", storage_url, "resume", "nobody")
    assert code == 1 and "Traceback" not in err
    code, out, _ = run(capsys, "--db", storage_url, "resume", "look")
    assert code == 0 and "look resumed" in out
    state = asyncio.run(_finish(storage_url))
    assert (state.status, state.output) == ("Completed", -1)


def test_cancel_of_a_suspended_instance_says_when_it_runs(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_suspend(storage_url))
    code, out, _ = run(capsys, "--db", storage_url, "cancel", "look")
    assert code == 0 and "runs when it is resumed" in out
