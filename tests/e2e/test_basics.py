"""Activity chains, payload decoding, handler shapes and timers, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from _helpers import WAIT, check_replay, of_type, outcome, run_to_end, runtime, types

import perdure
from perdure import events as h


@dataclass
class Order:
    id: str
    qty: int


@dataclass
class Receipt:
    order: Order
    total: float


@perdure.activity
async def reserve(ctx: perdure.ActivityContext, order: Order) -> Order:
    assert isinstance(order, Order)
    await asyncio.sleep(0)
    return Order(order.id + "-reserved", order.qty)


@perdure.activity(name="Price")
def price(ctx: perdure.ActivityContext, order: Order) -> Receipt:
    # A sync activity: it runs in the worker's thread pool.
    assert isinstance(order, Order)
    return Receipt(order, order.qty * 2.5)


@perdure.activity
def greet(ctx: perdure.ActivityContext, name: str) -> str:
    return f"hello {name}"


@perdure.activity
async def ping(ctx: perdure.ActivityContext) -> str:
    # Omits the input parameter.
    return f"pong:{ctx.activity_name}:{ctx.attempt}"


@perdure.orchestration(name="Checkout")
async def checkout(
    ctx: perdure.OrchestrationContext, order: Order
) -> dict[str, object]:
    assert isinstance(order, Order)
    reserved = await ctx.schedule_activity(reserve, order)  # the function itself
    assert isinstance(reserved, Order)
    receipt = await ctx.schedule_activity("Price", reserved)
    assert isinstance(receipt, Receipt) and isinstance(receipt.order, Order)
    hello = await ctx.schedule_activity(greet, receipt.order.id)
    pong = await ctx.schedule_activity(ping)
    return {"hello": hello, "total": receipt.total, "pong": pong}


@perdure.orchestration
async def no_input(ctx: perdure.OrchestrationContext) -> str:
    return await ctx.schedule_activity(greet, ctx.name)


@perdure.orchestration
async def timers(ctx: perdure.OrchestrationContext, delay: float) -> list[str]:
    seen = []
    start = ctx.utc_now()
    await ctx.schedule_timer(delay)
    seen.append("float")
    await ctx.schedule_timer(timedelta(seconds=delay))
    seen.append("timedelta")
    await ctx.schedule_timer(0)
    seen.append("zero")
    await ctx.schedule_timer(-1.0)  # a past deadline fires at once
    seen.append("negative")
    # Time moves with the events being processed, never backwards.
    assert ctx.utc_now() - start >= timedelta(seconds=2 * delay)
    return seen


HELLO_ORCHS: list[Callable[..., Any]] = [checkout, no_input]
HELLO_ACTS: list[Callable[..., Any]] = [reserve, price, greet, ping]


async def hello_scenario(client: perdure.Client, iid: str) -> object:
    state = await run_to_end(client, iid, checkout, Order("o1", 4))
    return outcome(state)


async def test_activity_chain_with_dataclasses(storage_url: str) -> None:
    async with runtime(storage_url, HELLO_ORCHS, HELLO_ACTS) as rt:
        state = await run_to_end(rt.client, "hello", "Checkout", Order("o1", 4))
        assert state.status == "Completed", state.error
        assert state.output == {
            "hello": "hello o1-reserved",
            "total": 10.0,
            "pong": "pong:ping:1",
        }
        assert state.name == "Checkout" and state.version == "1.0.0"
        assert state.execution_id == 1 and state.error is None
        history = await rt.client.get_history("hello")
    assert types(history) == [
        "OrchestrationStarted",
        *["ActivityScheduled", "ActivityCompleted"] * 4,
        "OrchestrationCompleted",
    ]
    scheduled = of_type(history, h.ActivityScheduled)
    assert [e.name for e in scheduled] == ["reserve", "Price", "greet", "ping"]
    assert scheduled[0].input == {"id": "o1", "qty": 4}  # stored as JSON
    assert [e.scope for e in scheduled] == ["0"] * 4
    completed = of_type(history, h.ActivityCompleted)
    assert [c.source_event_id for c in completed] == [e.event_id for e in scheduled]
    assert completed[1].result == {
        "order": {"id": "o1-reserved", "qty": 4},
        "total": 10.0,
    }
    assert [e.event_id for e in history] == list(range(1, len(history) + 1))


async def test_activity_chain_replay(storage_url: str) -> None:
    summary, _ = await check_replay(
        storage_url, HELLO_ORCHS, HELLO_ACTS, hello_scenario, "hello"
    )
    assert summary["status"] == "Completed"


async def test_handler_without_input_and_decorated_name(storage_url: str) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        return outcome(await run_to_end(client, iid, no_input))

    summary, history = await check_replay(
        storage_url, HELLO_ORCHS, HELLO_ACTS, scenario, "noinput"
    )
    assert summary["output"] == "hello no_input"
    assert isinstance(history[0], h.OrchestrationStarted)
    assert history[0].name == "no_input" and history[0].input is None


async def test_timers_float_timedelta_zero(storage_url: str) -> None:
    async with runtime(storage_url, [timers]) as rt:
        state = await run_to_end(rt.client, "timers", timers, 0.05)
        assert state.status == "Completed", state.error
        assert state.output == ["float", "timedelta", "zero", "negative"]
        history = await rt.client.get_history("timers")
    created = of_type(history, h.TimerCreated)
    fired = of_type(history, h.TimerFired)
    assert len(created) == len(fired) == 4
    assert [f.source_event_id for f in fired] == [c.event_id for c in created]
    assert round(created[0].fire_at - created[0].timestamp, 6) == 0.05
    assert round(created[1].fire_at - created[1].timestamp, 6) == 0.05
    assert created[2].fire_at == created[2].timestamp
    assert created[3].fire_at == created[3].timestamp  # clamped, not in the past
    for c, f in zip(created, fired, strict=True):
        assert f.timestamp >= c.fire_at


async def test_timers_replay(storage_url: str) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        return outcome(await run_to_end(client, iid, timers, 0.05))

    summary, _ = await check_replay(storage_url, [timers], [], scenario, "timers")
    assert summary["output"] == ["float", "timedelta", "zero", "negative"]


async def test_wait_for_orchestration_accepts_timedelta(storage_url: str) -> None:
    async with runtime(storage_url, HELLO_ORCHS, HELLO_ACTS) as rt:
        await rt.client.start_orchestration("td", no_input)
        state = await rt.client.wait_for_orchestration("td", timedelta(seconds=WAIT))
        assert state.status == "Completed"
