"""Instance values (``ctx.set_value``) end to end, on every backend.

The values are read with `Client.get_values` from the instance's row (no
orchestration turn runs for it), as soon as the turn that changed them has
committed, and after the instance ended; a continue-as-new carries them
on, a sub-orchestration starts without its parent's; bad values fail the
call and record nothing; a rewind leaves values that match the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from _helpers import WAIT, check_replay, eventually, of_type, runtime

import perdure
from perdure import events as h
from perdure._core._values import fold_values


@dataclass
class Progress:
    step: str
    count: int


@perdure.activity
def work(ctx: perdure.ActivityContext, n: int) -> int:
    return n * 10


@perdure.orchestration
async def progress(ctx: perdure.OrchestrationContext, n: int) -> int:
    ctx.set_value("progress", Progress("starting", 0))
    total = 0
    for i in range(n):
        total += await ctx.schedule_activity(work, i)
        ctx.set_value("progress", Progress("working", i + 1))
    ctx.set_value("total", total)
    ctx.set_value("scratch", [1, 2])
    await ctx.schedule_wait("go")
    ctx.clear_value("scratch")
    ctx.set_value("progress", {**ctx.get_value("progress"), "step": "done"})
    return int(ctx.get_value("total"))


@perdure.orchestration
async def counter(ctx: perdure.OrchestrationContext, rounds: int) -> Any:
    seen = ctx.get_value("n", 0)
    ctx.set_value("n", seen + 1)
    if seen + 1 < rounds:
        ctx.continue_as_new(rounds)
    return ctx.get_value("n")


@perdure.orchestration
async def child(ctx: perdure.OrchestrationContext) -> Any:
    inherited = ctx.get_value("secret", "none")
    ctx.set_value("mine", True)
    return inherited


@perdure.orchestration
async def parent(ctx: perdure.OrchestrationContext) -> Any:
    ctx.set_value("secret", 42)
    return await ctx.schedule_sub_orchestration(child, instance_id="kid")


@perdure.orchestration
async def misuse(ctx: perdure.OrchestrationContext) -> dict[str, str]:
    ctx.set_value("kept", "yes")
    tries: dict[str, Any] = {
        "unserialisable": ("k", object()),
        "value too big": ("big", "x" * (64 * 1024)),
        "key too long": ("k" * 257, 1),
        "empty key": ("", 1),
        "not a str key": (7, 1),
    }
    raised: dict[str, str] = {}
    for label, (key, value) in tries.items():
        try:
            ctx.set_value(key, value)
        except perdure.PayloadError as exc:
            raised[label] = type(exc).__name__
    # 4 values of 60 KiB fit (each under 64 KiB); a fifth is over 256 KiB.
    for i in range(5):
        try:
            ctx.set_value(f"chunk{i}", "y" * (60 * 1024))
        except perdure.ValueTooLarge as exc:
            raised[f"chunk{i}"] = type(exc).__name__
    return raised


async def progress_scenario(client: perdure.Client, iid: str) -> Any:
    await client.start_orchestration(iid, progress, 3)

    async def waiting() -> Any:
        values = await client.get_values(iid)
        return values if "scratch" in values else None

    midway = await eventually(waiting, "the values before the wait")
    await client.raise_event(iid, "go")
    state = await client.wait_for_orchestration(iid, WAIT)
    return {
        "midway": midway,
        "output": state.output,
        "end": await client.get_values(iid),
    }


async def test_values_are_readable_while_running_and_after(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, [progress], [work], progress_scenario, "progress"
    )
    assert summary["midway"] == {
        "progress": {"step": "working", "count": 3},
        "total": 30,
        "scratch": [1, 2],
    }
    assert summary["output"] == 30
    assert summary["end"] == {"progress": {"step": "done", "count": 3}, "total": 30}
    assert fold_values(history) == summary["end"]
    sets = of_type(history, h.StateValueSet)
    assert [e.key for e in sets][:2] == ["progress", "progress"]
    assert [e.key for e in of_type(history, h.StateValueCleared)] == ["scratch"]


async def counter_scenario(client: perdure.Client, iid: str) -> Any:
    await client.start_orchestration(iid, counter, 3)
    state = await client.wait_for_orchestration(iid, WAIT)
    starts = []
    for execution in (1, 2, 3):
        start = (await client.get_history(iid, execution))[0]
        assert isinstance(start, h.OrchestrationStarted)
        starts.append(start.values)
    return {
        "output": state.output,
        "values": await client.get_values(iid),
        "starts": starts,
    }


async def test_continue_as_new_carries_the_values(storage_url: str) -> None:
    summary, _ = await check_replay(storage_url, [counter], [], counter_scenario, "cnt")
    assert summary == {
        "output": 3,
        "values": {"n": 3},
        # The first execution's start has none (the field is omitted).
        "starts": [None, {"n": 1}, {"n": 2}],
    }


async def test_a_sub_orchestration_does_not_inherit_values(storage_url: str) -> None:
    async with runtime(storage_url, [parent, child]) as rt:
        await rt.client.start_orchestration("dad", parent)
        state = await rt.client.wait_for_orchestration("dad", WAIT)
        assert state.output == "none"
        assert await rt.client.get_values("dad") == {"secret": 42}
        assert await rt.client.get_values("kid") == {"mine": True}


async def test_bad_values_fail_the_call_and_record_nothing(storage_url: str) -> None:
    async with runtime(storage_url, [misuse]) as rt:
        await rt.client.start_orchestration("bad", misuse)
        state = await rt.client.wait_for_orchestration("bad", WAIT)
        assert state.status == "Completed", state.error
        assert state.output == {
            "unserialisable": "PayloadError",
            "value too big": "ValueTooLarge",
            "key too long": "ValueTooLarge",
            "empty key": "PayloadError",
            "not a str key": "PayloadError",
            "chunk4": "ValueTooLarge",
        }
        values = await rt.client.get_values("bad")
        assert sorted(values) == ["chunk0", "chunk1", "chunk2", "chunk3", "kept"]
        history = await rt.client.get_history("bad")
        keys = [e.key for e in of_type(history, h.StateValueSet)]
        assert keys == ["kept", "chunk0", "chunk1", "chunk2", "chunk3"]


async def test_get_values_of_an_unknown_instance(storage_url: str) -> None:
    async with perdure.Client(storage_url) as client:
        with pytest.raises(perdure.InstanceNotFound):
            await client.get_values("nobody")
    with (
        perdure.SyncClient(storage_url) as sync,
        pytest.raises(perdure.InstanceNotFound),
    ):
        sync.get_values("nobody")


@perdure.activity
def charge(ctx: perdure.ActivityContext, amount: int) -> str:
    return f"charged {amount}"


def billing(fixed: bool) -> Any:
    @perdure.orchestration(name="Billing")
    async def code(ctx: perdure.OrchestrationContext) -> str:
        ctx.set_value("step", "charging")
        receipt = await ctx.schedule_activity(charge, 5)
        ctx.set_value("receipt", receipt)
        if not fixed:
            raise KeyError("bug after charging")
        ctx.set_value("step", "done")
        return receipt

    return code


async def test_values_of_a_failed_instance_and_after_a_rewind(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [billing(False)], [charge]) as rt:
        await rt.client.start_orchestration("bill", "Billing")
        state = await rt.client.wait_for_orchestration("bill", WAIT)
        assert state.status == "Failed"
        # The failing turn's set_value was committed with its failure.
        failed = {"step": "charging", "receipt": "charged 5"}
        assert await rt.client.get_values("bill") == failed
        with perdure.SyncClient(storage_url) as sync:
            assert sync.get_values("bill") == failed
    async with runtime(storage_url, [billing(True)], [charge]) as rt:
        await rt.client.rewind("bill")
        state = await rt.client.wait_for_orchestration("bill", WAIT)
        assert (state.status, state.output) == ("Completed", "charged 5")
        history = await rt.client.get_history("bill")
        values = await rt.client.get_values("bill")
    assert values == {"step": "done", "receipt": "charged 5"}
    assert values == fold_values(history)
    assert of_type(history, h.ExecutionRewound)
