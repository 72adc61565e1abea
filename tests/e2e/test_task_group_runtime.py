"""Issue 12: task-group failures under ``Runtime(suspend_on_error=True)``.

An `ExceptionGroup` made only of perdure errors (failed activities raised
together by a task group) is how a workflow fails on purpose: the instance
fails. One holding a plain exception is a code bug: it is suspended.
"""

from __future__ import annotations

from typing import Any

from _helpers import WAIT, eventually, runtime

import perdure


@perdure.activity
def declined(ctx: perdure.ActivityContext) -> None:
    raise ValueError("card declined")


async def charge(ctx: perdure.OrchestrationContext, shared: Any, bug: bool) -> None:
    try:
        await shared
    except perdure.ActivityFailed:
        if bug:
            raise KeyError("a bug in the handler") from None
        raise


@perdure.orchestration
async def group_fails(ctx: perdure.OrchestrationContext, bug: bool) -> None:
    shared = ctx.schedule_activity(declined)
    async with ctx.task_group() as tg:  # both tasks fail on one completion
        tg.start(charge(ctx, shared, False))
        tg.start(charge(ctx, shared, bug))


async def status_of(client: perdure.Client, iid: str, status: str) -> Any:
    async def probe() -> Any:
        state = await client.get_status(iid)
        return state if state is not None and state.status == status else None

    return await eventually(probe, f"{iid} to be {status}")


async def test_group_of_perdure_errors_fails_rather_than_suspends(
    storage_url: str,
) -> None:
    async with runtime(
        storage_url, [group_fails], [declined], suspend_on_error=True
    ) as rt:
        await rt.client.start_orchestration("g", group_fails, False)
        failed = await rt.client.wait_for_orchestration("g", timeout=WAIT)
        await rt.client.start_orchestration("b", group_fails, True)
        suspended = await status_of(rt.client, "b", "Suspended")
        history = await rt.client.get_history("g")
    assert failed.status == "Failed" and failed.error is not None
    assert failed.error.type == "ExceptionGroup"
    assert "2 tasks of a task group failed" in failed.error.message
    assert [e.type for e in history][-1] == "OrchestrationFailed"
    # A plain exception in the group is a bug: suspended, not failed.
    assert suspended.error is not None
    assert suspended.error.type == "ExceptionGroup"  # the bug part of it
    assert "1 sub-exception" in suspended.error.message
    assert "KeyError: 'a bug in the handler'" in (suspended.error.stack or "")
