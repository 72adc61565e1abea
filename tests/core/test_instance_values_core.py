"""Instance values in the kernel: replay, determinism, limits, carry-over.

Pure tests (no storage): `ctx.set_value`/`get_value`/`clear_value` through
the `Simulator`, `perdure.testing.replay` and a driver built as the runtime
builds one. The end-to-end behaviour on storage is in
tests/e2e/test_instance_values.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from _core_util import check_replay, fresh_driver, of_type

import perdure
from perdure._codec import dumps
from perdure._core import _history as h
from perdure._core._values import (
    MAX_KEY_CHARS,
    MAX_TOTAL_BYTES,
    MAX_VALUE_BYTES,
    fold_values,
)
from perdure._registry import Registry
from perdure._turn import build_driver
from perdure.testing import Simulator, replay

T0 = 1_700_000_000.0


@perdure.orchestration(name="Order")
async def order(ctx: perdure.OrchestrationContext, items: list[str]) -> int:
    ctx.set_value("step", "reserving")
    for i, item in enumerate(items):
        await ctx.schedule_activity("Reserve", item)
        ctx.set_value("reserved", i + 1)
    ctx.set_value("step", "paying")
    await ctx.schedule_activity("Pay", len(items))
    ctx.clear_value("reserved")
    ctx.set_value("step", "done")
    return len(items)


def test_values_follow_the_code_and_replay_the_same() -> None:
    sim = Simulator(order, ["a", "b"], activities={"Reserve": True, "Pay": "ok"})
    assert sim.result.values == {"step": "reserving"}
    sim.run_activity(3)  # Reserve a (event 2 is the first set_value)
    assert sim.result.values == {"step": "reserving", "reserved": 1}
    result = sim.run()
    assert (result.status, result.values) == ("Completed", {"step": "done"})
    replayed = check_replay(order, sim)
    assert replayed.values == {"step": "done"}
    sets = of_type(sim.history, h.StateValueSet)
    assert [(e.key, e.value) for e in sets] == [
        ("step", "reserving"),
        ("reserved", 1),
        ("reserved", 2),
        ("step", "paying"),
        ("step", "done"),
    ]
    assert [e.key for e in of_type(sim.history, h.StateValueCleared)] == ["reserved"]


def _changed(key: str = "step", value: str = "reserving", clear: bool = True) -> Any:
    @perdure.orchestration(name="Order")
    async def code(ctx: perdure.OrchestrationContext, items: list[str]) -> int:
        ctx.set_value(key, value)
        for i, item in enumerate(items):
            await ctx.schedule_activity("Reserve", item)
            ctx.set_value("reserved", i + 1)
        ctx.set_value("step", "paying")
        await ctx.schedule_activity("Pay", len(items))
        if clear:
            ctx.clear_value("reserved")
        ctx.set_value("step", "done")
        return len(items)

    return code


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (_changed(key="phase"), "StateValueSet(key='step'"),
        (_changed(value="queued"), "value='reserving'"),
        (_changed(clear=False), "StateValueCleared(key='reserved')"),
    ],
    ids=["key", "value", "clear dropped"],
)
def test_changed_value_calls_are_nondeterministic(code: Any, says: str) -> None:
    sim = Simulator(order, ["a"], activities={"Reserve": True, "Pay": "ok"})
    sim.run()
    replay(_changed(), sim.history)  # the same code under another object
    with pytest.raises(perdure.NondeterminismError, match=r"history has") as info:
        replay(code, sim.history)
    assert says in str(info.value)


def test_get_value_gives_a_copy_and_a_default() -> None:
    seen: list[Any] = []

    @perdure.orchestration
    async def mutate(ctx: perdure.OrchestrationContext) -> Any:
        seen.append(ctx.get_value("missing", "dflt"))
        ctx.set_value("box", {"items": [1]})
        got = ctx.get_value("box")
        got["items"].append(2)  # changes the copy only
        return ctx.get_value("box")

    sim = Simulator(mutate)
    assert sim.result.output == {"items": [1]}
    assert sim.result.values == {"box": {"items": [1]}}
    assert seen == ["dflt"]


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("k" * (MAX_KEY_CHARS + 1), 1, perdure.ValueTooLarge),
        ("ok", "x" * MAX_VALUE_BYTES, perdure.ValueTooLarge),  # + 2 quotes
        ("ok", "é" * (MAX_VALUE_BYTES // 2), perdure.ValueTooLarge),  # UTF-8 bytes
        ("ok", {1, 2}, perdure.PayloadError),
        ("", 1, perdure.PayloadError),
        (None, 1, perdure.PayloadError),
        ("nul\x00", 1, perdure.PayloadError),
        ("\ud800", 1, perdure.PayloadError),
    ],
)
def test_a_refused_value_records_nothing(key: Any, value: Any, error: type) -> None:
    @perdure.orchestration
    async def bad(ctx: perdure.OrchestrationContext) -> str:
        ctx.set_value("before", 1)
        try:
            ctx.set_value(key, value)
        except perdure.PayloadError as exc:
            return type(exc).__name__
        return "accepted"

    sim = Simulator(bad)
    assert sim.result.output == error.__name__
    assert sim.result.values == {"before": 1}
    assert [e.key for e in of_type(sim.history, h.StateValueSet)] == ["before"]


def test_the_limits_are_inclusive_and_the_total_counts_keys() -> None:
    @perdure.orchestration
    async def fill(ctx: perdure.OrchestrationContext) -> list[str]:
        out = []
        ctx.set_value("k" * MAX_KEY_CHARS, 0)  # the longest key
        ctx.clear_value("k" * MAX_KEY_CHARS)
        big = "x" * (MAX_VALUE_BYTES - 2)  # exactly the limit as JSON
        for i in range(4):  # 4 keys "v0".."v3" + 4 x 64 KiB > 256 KiB
            try:
                ctx.set_value(f"v{i}", big)
                out.append(f"v{i}")
            except perdure.ValueTooLarge:
                out.append(f"v{i} refused")
        # Replacing a value frees its old size first.
        ctx.set_value("v0", "small")
        ctx.set_value("v3", big[: MAX_VALUE_BYTES - 200])
        out.append("v3 after replace")
        return out

    sim = Simulator(fill)
    assert sim.result.status == "Completed", sim.result.error
    assert sim.result.output == ["v0", "v1", "v2", "v3 refused", "v3 after replace"]
    values = sim.result.values
    total = sum(len(k) + len(dumps(v)) for k, v in values.items())
    assert total <= MAX_TOTAL_BYTES


def test_a_cancelled_task_cannot_set_but_a_shield_can() -> None:
    @perdure.orchestration
    async def flow(ctx: perdure.OrchestrationContext) -> Any:
        async def worker() -> None:
            try:
                await ctx.schedule_wait("never")
            except perdure.Cancelled:
                try:
                    ctx.set_value("unshielded", True)
                except perdure.Cancelled:
                    ctx.get_value("unshielded")  # reading is fine
                async with ctx.shield():
                    ctx.set_value("cleanup", "ran")
                raise

        task = ctx.durable_async(worker())
        await ctx.schedule_timer(1)
        task.cancel()
        return "ok"

    sim = Simulator(flow)
    sim.advance(1)
    assert sim.result.status == "Completed"
    assert sim.result.values == {"cleanup": "ran"}
    check_replay(flow, sim)


@perdure.orchestration(name="Counter")
async def counter(ctx: perdure.OrchestrationContext, rounds: int) -> Any:
    seen = ctx.get_value("n", 0)
    ctx.set_value("n", seen + 1)
    if seen + 1 < rounds:
        ctx.continue_as_new(rounds)
    return ctx.get_value("n")


def test_an_execution_starts_with_the_values_its_start_carries() -> None:
    sim = Simulator(counter, 3)
    assert (sim.result.status, sim.result.values) == ("ContinuedAsNew", {"n": 1})
    # The next execution's history, as the runtime writes it.
    history: list[h.Event] = [
        h.OrchestrationStarted(
            event_id=1, timestamp=T0, name="Counter", version="1.0.0", input=3,
            values={"n": 2},
        ),
        h.StateValueSet(event_id=2, timestamp=T0, key="n", value=3),
        h.OrchestrationCompleted(event_id=3, timestamp=T0, output=3),
    ]  # fmt: skip
    result = replay(counter, history, execution_id=3)
    assert (result.status, result.output, result.values) == ("Completed", 3, {"n": 3})
    assert fold_values(history) == {"n": 3}
    # Without the carried values the same code diverges.
    bare = [h.OrchestrationStarted(event_id=1, timestamp=T0, name="Counter",
            version="1.0.0", input=3), *history[1:]]  # fmt: skip
    with pytest.raises(perdure.NondeterminismError):
        replay(counter, bare, execution_id=3)
    # An empty start omits the field: old histories stay byte for byte.
    assert '"values"' not in h.event_to_json(bare[0])


def _turn(driver: Any, cls: type[h.Event], source: int | None = None, **kw: Any) -> Any:
    driver.begin_turn(T0)
    driver.deliver(cls, source, **kw)
    return driver.end_turn()


def test_a_turn_reports_values_only_when_the_commit_must_write_them() -> None:
    registry = Registry([counter, order])
    start = h.OrchestrationStarted(
        event_id=1, timestamp=T0, name="Order", version="1.0.0"
    )
    driver = build_driver(registry, "o", 1, start)
    first = _turn(
        driver, h.OrchestrationStarted, name="Order", version="1.0.0", input=["a"]
    )
    assert first.values == {"step": "reserving"}
    # The Reserve completion sets "reserved"; then a turn that sets nothing.
    second = _turn(driver, h.ActivityCompleted, 3, result=True)
    assert second.values == {"step": "paying", "reserved": 1}
    third = _turn(driver, h.EventRaised, name="noise", data=None)
    assert third.values is None
    # A rebuilt driver (cache miss) reports nothing for a turn that sets nothing.
    history = [*first.events, *second.events, *third.events]
    again = fresh_driver(order, history, "o")
    again.replay(history)
    assert _turn(again, h.EventRaised, name="noise", data=None).values is None
    # The continue-as-new turn always carries them, changed or not.
    start = h.OrchestrationStarted(
        event_id=1, timestamp=T0, name="Counter", version="1.0.0"
    )
    driver = build_driver(registry, "c", 1, start)
    ended = _turn(
        driver, h.OrchestrationStarted, name="Counter", version="1.0.0", input=2
    )
    assert (ended.outcome.status, ended.values) == ("ContinuedAsNew", {"n": 1})


def test_a_rewind_keeps_the_values_the_history_sets() -> None:
    def billing(fixed: bool) -> Any:
        @perdure.orchestration(name="Billing")
        async def code(ctx: perdure.OrchestrationContext) -> str:
            ctx.set_value("step", "charging")
            receipt = await ctx.schedule_activity("Charge", 5)
            ctx.set_value("receipt", receipt)
            if not fixed:
                raise KeyError("bug")
            ctx.set_value("step", "done")
            return str(receipt)

        return code

    sim = Simulator(billing(False), activities={"Charge": "r-5"})
    sim.run()
    assert sim.result.status == "Failed"
    assert sim.result.values == {"step": "charging", "receipt": "r-5"}
    sim.rewind(billing(True))
    assert (sim.result.status, sim.result.output) == ("Completed", "r-5")
    assert sim.result.values == {"step": "done", "receipt": "r-5"}
    assert replay(billing(True), sim.history).values == sim.result.values
