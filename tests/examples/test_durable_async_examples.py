"""The durable_async examples: winners, outputs, and what was cancelled.

Each test runs its example twice - with the instance cache on, and off so
that every turn replays the stored history - and checks the race's outcome,
the exact set of work the losing scope had cancelled (through
``get_history``), and that work which had already completed was left alone
(`cancelled` asserts that for every cancel event).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from _examples_support import (
    cancelled,
    cancelled_labels,
    completed,
    histories,
    label,
    load,
    names,
    scheduled,
)

import perdure
from perdure import events as h


@pytest.fixture(params=["cached", "replayed"])
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Runtime options: the instance cache on, or a full replay every turn."""
    return {} if request.param == "cached" else {"instance_cache_size": 0}


async def test_racing_activity_vs_pipeline(
    sqlite_url: str, options: dict[str, Any]
) -> None:
    example = load("racing_activity_vs_pipeline")
    assert await example.run(sqlite_url, **options) == "quick:o-17:ok"
    history = (await histories(sqlite_url, example.INSTANCE))[example.INSTANCE]
    assert cancelled_labels(history) == ["CreditCheck"]
    (validate,) = scheduled(history, "ValidateCustomer")
    assert completed(history, validate) == "c-42:valid"  # finished: kept
    assert names(history) == ["QuickCheck", "ValidateCustomer", "CreditCheck"]
    assert scheduled(history, "QuickCheck")[0].scope == "0"
    assert validate.scope == scheduled(history, "CreditCheck")[0].scope == "0.1"


async def test_timeout_with_polling(sqlite_url: str, options: dict[str, Any]) -> None:
    example = load("timeout_with_polling")
    outputs = await example.run(sqlite_url, **options)
    assert outputs[example.READY].startswith("provisioned vm-")
    assert outputs[example.STUCK] == "provisioning timed out; VM deleted"
    runs = await histories(sqlite_url, example.READY, example.STUCK)

    ready = runs[example.READY]
    (overall,) = cancelled(ready)  # only the overall timeout timer
    assert isinstance(overall, h.TimerCreated) and overall.scope == "0"
    assert len(scheduled(ready, "CheckVMStatus")) >= 2  # it did poll
    installs = [e.input.split(":")[1] for e in scheduled(ready, "InstallPackage")]
    assert installs == ["nginx", "postgres", "redis"]
    assert "DeleteVM" not in names(ready)

    stuck = runs[example.STUCK]
    # The block was at one of its two awaits in the loop when time ran out.
    (loser,) = cancelled(stuck)
    assert label(loser) in ("timer", "CheckVMStatus") and loser.scope == "0.1"
    (create,) = scheduled(stuck, "CreateVM")
    vm_id = completed(stuck, create)
    assert [e.input for e in scheduled(stuck, "DeleteVM")] == [vm_id]
    assert scheduled(stuck, "DeleteVM")[0].scope == "0"  # cleanup outside
    assert not scheduled(stuck, "InstallPackage")


async def test_racing_two_pipelines(sqlite_url: str, options: dict[str, Any]) -> None:
    example = load("racing_two_pipelines")
    assert await example.run(sqlite_url, **options) == "path_a:input>a1>a2>a3"
    history = (await histories(sqlite_url, example.INSTANCE))[example.INSTANCE]
    # Both tasks started in the first turn, A first.
    assert names(history)[:2] == ["A1", "B1"]
    (timer,) = cancelled(history)
    assert isinstance(timer, h.TimerCreated) and timer.scope == "0.2"
    (b1,) = scheduled(history, "B1")
    assert completed(history, b1) == "input>b1"
    assert not scheduled(history, "B2")
    assert {e.scope for n in ("A1", "A2", "A3") for e in scheduled(history, n)} == {
        "0.1"
    }


async def test_batch_with_early_exit(sqlite_url: str, options: dict[str, Any]) -> None:
    example = load("batch_with_early_exit")
    outcomes = await example.run(sqlite_url, **options)
    assert outcomes == {
        "batch-completed": {"processed": 3, "failed": 1},
        "batch-aborted": "BatchAborted: too many failures: 2",
        "batch-timed-out": "TimeoutError: batch processing timed out",
    }
    runs = await histories(sqlite_url, *example.BATCHES)

    done = runs["batch-completed"]
    calls = [(e.name, e.input) for e in done if isinstance(e, h.ActivityScheduled)]
    assert calls == [
        ("PriorityProcess", "i1"),
        ("StandardProcess", "i2"),
        ("StandardProcess", "bad-4"),  # i3 (low priority) skipped
        ("StandardProcess", "i5"),
    ]
    (deadline,) = cancelled(done)
    assert isinstance(deadline, h.TimerCreated) and deadline.scope == "0"

    aborted = runs["batch-aborted"]
    assert [e.input for e in aborted if isinstance(e, h.ActivityScheduled)] == [
        "bad-1",
        "bad-2",
    ]  # the early exit: i3 is never processed
    assert [(e.type, e.scope) for e in cancelled(aborted)] == [("TimerCreated", "0")]
    assert aborted[-1].type == "OrchestrationFailed"

    late = runs["batch-timed-out"]
    (slow_call,) = cancelled(late)
    assert isinstance(slow_call, h.ActivityScheduled)
    assert (slow_call.name, slow_call.input) == ("StandardProcess", "slow-2")
    (first,) = [e for e in scheduled(late, "StandardProcess") if e.input == "i1"]
    assert completed(late, first) == "i1:done"
    assert "i3" not in [e.input for e in scheduled(late, "StandardProcess")]


async def test_nested_durable_async(sqlite_url: str, options: dict[str, Any]) -> None:
    example = load("nested_durable_async")
    outputs = await example.run(sqlite_url, **options)
    assert outputs == {
        example.FAST: "fast-job:ready>b>final",
        example.SLOW: "timed out",
    }
    runs = await histories(sqlite_url, example.FAST, example.SLOW)

    fast = runs[example.FAST]
    (a1,), (b,) = scheduled(fast, "InnerA1"), scheduled(fast, "InnerB")
    assert (a1.scope, b.scope) == ("0.1.1", "0.1")  # B belongs to the outer block
    # InnerB won the inner race and stays completed; only the nested block's
    # InnerA1 and (after Finalize) the overall timeout are cancelled.
    assert cancelled_labels(fast) == ["InnerA1", "timer"]
    assert completed(fast, b) == "fast-job:ready>b"
    assert not scheduled(fast, "InnerA2")
    (final,) = scheduled(fast, "Finalize")
    assert completed(fast, final) == "fast-job:ready>b>final"

    slow = runs[example.SLOW]
    # The timeout cascades through the outer block into the nested one.
    assert [(label(e), e.scope) for e in cancelled(slow)] == [
        ("InnerA1", "0.1.1"),
        ("InnerB", "0.1"),
    ]
    (setup,) = scheduled(slow, "Setup")
    assert completed(slow, setup) == "slow-job:ready"
    assert not scheduled(slow, "Finalize")


async def test_helper_functions(sqlite_url: str, options: dict[str, Any]) -> None:
    example = load("helper_functions")
    outcomes = await example.run(sqlite_url, **options)
    assert outcomes == {
        example.PAID: "c1:valid:s1:in-stock|visa:charged",
        example.STALLED: "TimeoutError: order processing timed out",
    }
    runs = await histories(sqlite_url, example.PAID, example.STALLED)
    helpers = ["ValidateCustomer", "CheckInventory", "ChargeCard"]

    paid = runs[example.PAID]
    assert cancelled_labels(paid) == ["timer"]
    assert names(paid) == helpers

    stalled = runs[example.STALLED]
    # Work scheduled by helper functions belongs to the task that ran them.
    assert {e.scope for e in stalled if isinstance(e, h.ActivityScheduled)} == {"0.1"}
    assert cancelled_labels(stalled) == ["ChargeCard"]
    for name in helpers[:2]:
        (call,) = scheduled(stalled, name)
        completed(stalled, call)


async def test_direct_await_equals_inline(
    sqlite_url: str, options: dict[str, Any]
) -> None:
    example = load("direct_await")
    outputs = await example.run(sqlite_url, **options)
    assert outputs == {example.WITH_TASK: "x>1>2>3", example.INLINE: "x>1>2>3"}
    runs = await histories(sqlite_url, example.WITH_TASK, example.INLINE)

    def calls(history: Sequence[perdure.Event]) -> list[tuple[object, ...]]:
        # Everything but timestamps and scope tags.
        fields = ("type", "event_id", "source_event_id", "name", "input", "result")
        return [
            tuple(getattr(e, field, None) for field in fields)
            for e in history
            if e.type != "OrchestrationStarted"
        ]

    assert calls(runs[example.WITH_TASK]) == calls(runs[example.INLINE])
    scopes = [
        e.scope for e in runs[example.WITH_TASK] if isinstance(e, h.ActivityScheduled)
    ]
    assert scopes == ["0.1", "0.1", "0"]
    assert cancelled_labels(runs[example.WITH_TASK]) == []


@perdure.activity
async def refuse(ctx: perdure.ActivityContext, value: str) -> str:
    raise ValueError(f"refused {value}")


@perdure.orchestration
async def direct_failure(ctx: perdure.OrchestrationContext) -> str:
    async def block() -> str:
        return await ctx.schedule_activity(refuse, "x")

    try:
        await perdure.durable_async(ctx, block())
    except perdure.ActivityFailed as error:
        return f"caught: {error.message}"
    return "not raised"


async def test_direct_await_propagates_the_blocks_exception(sqlite_url: str) -> None:
    # The direct_await example's docstring promises this.
    async with perdure.Runtime(
        sqlite_url, orchestrations=[direct_failure], activities=[refuse]
    ) as rt:
        await rt.client.start_orchestration("f", direct_failure)
        state = await rt.client.wait_for_orchestration("f", timeout=20)
    assert (state.status, state.output) == ("Completed", "caught: refused x")
