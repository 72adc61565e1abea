"""Deploy safety (DESIGN §9): version routing, Suspended, resume."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from _helpers import WAIT, eventually, reached, runtime

import perdure
from perdure import events as h


@perdure.activity
def step_a(ctx: perdure.ActivityContext) -> str:
    return "a"


@perdure.activity
def step_b(ctx: perdure.ActivityContext) -> str:
    return "b"


ACTS = [step_a, step_b]


def versions() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Two versions of one orchestration that say which one ran them."""

    @perdure.orchestration(name="Flow", version="1")
    async def v1(ctx: perdure.OrchestrationContext) -> str:
        await ctx.schedule_wait("go")
        return "v1:" + await ctx.schedule_activity(step_a)

    @perdure.orchestration(name="Flow", version="2")
    async def v2(ctx: perdure.OrchestrationContext) -> str:
        await ctx.schedule_wait("go")
        return "v2:" + await ctx.schedule_activity(step_b)

    return v1, v2


def shipping() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """A deploy that changed code in place (nondeterministic) and its fix."""

    @perdure.orchestration(name="Shipping")
    async def v1(ctx: perdure.OrchestrationContext) -> object:
        await ctx.schedule_activity(step_a)
        return await ctx.schedule_wait("go")

    @perdure.orchestration(name="Shipping")
    async def bad(ctx: perdure.OrchestrationContext) -> object:
        await ctx.schedule_activity(step_b)  # changed: another activity
        return await ctx.schedule_wait("go")

    return v1, bad


async def status_of(client: perdure.Client, iid: str, status: str) -> Any:
    async def probe() -> Any:
        state = await client.get_status(iid)
        return state if state is not None and state.status == status else None

    return await eventually(probe, f"{iid} to be {status}")


async def test_runtimes_with_different_versions_each_finish_their_own(
    storage_url: str,
) -> None:
    v1, v2 = versions()
    async with (
        runtime(storage_url, [v1], ACTS) as one,
        runtime(storage_url, [v2], ACTS) as two,
    ):
        client = one.client
        for i in range(4):
            await client.start_orchestration(f"old-{i}", "Flow", version="1")
            await client.start_orchestration(f"new-{i}", "Flow", version="2")
        for i in range(4):
            for iid in (f"old-{i}", f"new-{i}"):
                await reached(client, iid, h.EventWaitStarted)
                await client.raise_event(iid, "go")
        states = {
            iid: await two.client.wait_for_orchestration(iid, timeout=WAIT)
            for i in range(4)
            for iid in (f"old-{i}", f"new-{i}")
        }
    for iid, state in states.items():
        expected = "v1:a" if iid.startswith("old") else "v2:b"
        assert (state.status, state.output) == ("Completed", expected), iid


async def test_an_unregistered_version_waits_running_and_continues_later(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    v1, v2 = versions()
    async with runtime(storage_url, [v2], ACTS) as rt:
        await rt.client.start_orchestration("old", "Flow", version="1")
        await rt.client.start_orchestration("new", "Flow")  # newest: v2
        await reached(rt.client, "new", h.EventWaitStarted)
        await asyncio.sleep(0.3)
        state = await rt.client.get_status("old")
        assert state is not None and state.status == "Running"
        assert await rt.client.get_history("old") == []
    async with runtime(storage_url, [v1], ACTS) as rt:
        await reached(rt.client, "old", h.EventWaitStarted)
        await rt.client.raise_event("old", "go")
        state = await rt.client.wait_for_orchestration("old", timeout=WAIT)
    assert (state.status, state.output) == ("Completed", "v1:a")


async def test_a_waiting_version_is_logged_once(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perdure import _waiting

    monkeypatch.setattr(_waiting, "_WAITING_AFTER", 0.05)
    _, v2 = versions()
    caplog.set_level(logging.WARNING, "perdure.dispatcher")
    async with runtime(sqlite_url, [v2], ACTS) as rt:
        for i in range(3):
            await rt.client.start_orchestration(f"old-{i}", "Flow", version="1")

        def logged() -> list[str]:
            return [r.getMessage() for r in caplog.records if "wait for" in r.message]

        (line,) = await eventually(logged, "the waiting log line")
        await asyncio.sleep(0.3)  # several more checks: still one line
        assert logged() == [line]
    assert "3 instance(s) of orchestration 'Flow' version '1'" in line
    assert "Flow '2'" in line


async def test_nondeterminism_suspends_and_a_fixed_deploy_resumes(
    storage_url: str,
) -> None:
    v1, bad = shipping()
    async with runtime(storage_url, [v1], ACTS) as rt:
        await rt.client.start_orchestration("ship", "Shipping")
        await reached(rt.client, "ship", h.EventWaitStarted)
        before = await rt.client.get_history("ship")
    async with runtime(storage_url, [bad], ACTS, instance_cache_size=0) as rt:
        await rt.client.raise_event("ship", "go", 1)
        state = await status_of(rt.client, "ship", "Suspended")
        # Nothing of the failed turn is stored; the event is kept.
        assert await rt.client.get_history("ship") == before
        await rt.client.raise_event("ship", "go", 2)  # accepted while suspended
    assert state.error is not None
    assert state.error.type == "NondeterminismError"
    assert state.error.category == "configuration"
    assert "step_a" in state.error.message and "step_b" in state.error.message
    async with runtime(storage_url, [v1], ACTS) as rt:  # the fix: v1 again
        await asyncio.sleep(0.2)
        still = await rt.client.get_status("ship")
        assert still is not None and still.status == "Suspended"
        await rt.client.resume("ship")
        done = await rt.client.wait_for_orchestration("ship", timeout=WAIT)
        history = await rt.client.get_history("ship")
    assert (done.status, done.output, done.error) == ("Completed", 1, None)
    assert history[: len(before)] == before


async def test_suspend_on_error_keeps_a_bug_from_failing_the_instance(
    storage_url: str,
) -> None:
    @perdure.orchestration(name="Lookup")
    async def buggy(ctx: perdure.OrchestrationContext, table: dict[str, int]) -> int:
        await ctx.schedule_activity(step_a)
        return table["missing"]  # a KeyError: a bug, not a business failure

    @perdure.orchestration(name="Lookup")
    async def fixed(ctx: perdure.OrchestrationContext, table: dict[str, int]) -> int:
        await ctx.schedule_activity(step_a)
        return table.get("missing", -1)

    async with runtime(storage_url, [buggy], ACTS, suspend_on_error=True) as rt:
        await rt.client.start_orchestration("look", "Lookup", {"x": 1})
        state = await status_of(rt.client, "look", "Suspended")
        history = await rt.client.get_history("look")
    assert state.error is not None and state.error.type == "KeyError"
    assert state.error.stack and "table[" in state.error.stack
    assert [e.type for e in history] == [
        "OrchestrationStarted",
        "ActivityScheduled",
    ]
    async with runtime(storage_url, [fixed], ACTS, suspend_on_error=True) as rt:
        await rt.client.resume("look")
        done = await rt.client.wait_for_orchestration("look", timeout=WAIT)
    assert (done.status, done.output) == ("Completed", -1)


async def test_without_suspend_on_error_a_bug_fails_and_perdure_errors_always_do(
    storage_url: str,
) -> None:
    @perdure.activity
    def declined(ctx: perdure.ActivityContext) -> None:
        raise ValueError("card declined")

    @perdure.orchestration
    async def keyerror(ctx: perdure.OrchestrationContext) -> None:
        raise KeyError("k")

    @perdure.orchestration
    async def uncaught(ctx: perdure.OrchestrationContext) -> None:
        await ctx.schedule_activity(declined)

    orchs = [keyerror, uncaught]
    async with runtime(storage_url, orchs, [declined]) as rt:
        await rt.client.start_orchestration("k", keyerror)
        plain = await rt.client.wait_for_orchestration("k", timeout=WAIT)
    async with runtime(storage_url, orchs, [declined], suspend_on_error=True) as rt:
        await rt.client.start_orchestration("u", uncaught)
        failed = await rt.client.wait_for_orchestration("u", timeout=WAIT)
    assert plain.status == "Failed"
    # A failed activity left uncaught is how a workflow fails on purpose.
    assert failed.status == "Failed" and failed.error is not None
    assert "card declined" in failed.error.message


async def test_resume_refuses_what_is_not_suspended(storage_url: str) -> None:
    v1, _ = shipping()
    async with runtime(storage_url, [v1], ACTS) as rt:
        await rt.client.start_orchestration("ship", "Shipping")
        with pytest.raises(perdure.PerdureError, match="Running, not Suspended"):
            await rt.client.resume("ship")
        with pytest.raises(perdure.InstanceNotFound):
            await rt.client.resume("nobody")


async def test_a_suspended_instance_is_cancelled_when_resumed(storage_url: str) -> None:
    @perdure.orchestration(name="Twice")
    async def v1(ctx: perdure.OrchestrationContext) -> object:
        await ctx.schedule_activity(step_a)
        await ctx.schedule_wait("go")
        return await ctx.schedule_wait("never")

    @perdure.orchestration(name="Twice")
    async def bad(ctx: perdure.OrchestrationContext) -> object:
        await ctx.schedule_activity(step_b)
        return await ctx.schedule_wait("go")

    async with runtime(storage_url, [v1], ACTS) as rt:
        await rt.client.start_orchestration("t", "Twice")
        await reached(rt.client, "t", h.EventWaitStarted)
    async with runtime(storage_url, [bad], ACTS, instance_cache_size=0) as rt:
        await rt.client.raise_event("t", "go", 1)
        await status_of(rt.client, "t", "Suspended")
        await rt.client.cancel_instance("t", "operator")
    async with runtime(storage_url, [v1], ACTS) as rt:
        await rt.client.resume("t")
        done = await rt.client.wait_for_orchestration("t", timeout=WAIT)
        history = await rt.client.get_history("t")
    assert done.status == "Cancelled"
    # Both kept messages were delivered, in the order they occurred.
    kinds = [e.type for e in history]
    assert kinds.index("EventRaised") < kinds.index("OrchestrationCancelRequested")


async def test_an_orchestration_failure_is_logged_once_with_its_stack(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    @perdure.orchestration(name="Lookup")
    async def buggy(ctx: perdure.OrchestrationContext, table: dict[str, int]) -> int:
        await ctx.schedule_activity(step_a)
        return table["missing"]

    caplog.set_level(logging.ERROR, "perdure.dispatcher")
    async with runtime(storage_url, [buggy], ACTS) as rt:
        await rt.client.start_orchestration("look", "Lookup", {"x": 1})
        state = await rt.client.wait_for_orchestration("look", timeout=WAIT)
        history = await rt.client.get_history("look")
    assert state.status == "Failed" and state.error is not None
    assert state.error.stack is not None
    assert 'return table["missing"]' in state.error.stack
    # The history event keeps the form replay compares: no stack there.
    failed = history[-1]
    assert isinstance(failed, h.OrchestrationFailed) and "stack" not in failed.error
    (record,) = [r for r in caplog.records if "instance look failed" in r.message]
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
