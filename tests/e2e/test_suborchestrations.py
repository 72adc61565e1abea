"""Sub-orchestrations (awaited children) and detached orchestrations."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from _helpers import WAIT, check_replay, eventually, of_type, outcome, reached, runtime

import perdure
from perdure import events as h


@perdure.activity
def double(ctx: perdure.ActivityContext, n: int) -> int:
    return 2 * n


@perdure.orchestration
async def child(ctx: perdure.OrchestrationContext, n: int) -> dict[str, object]:
    if n < 0:
        raise ValueError(f"negative input {n}")
    value = await ctx.schedule_activity(double, n)
    return {"id": ctx.instance_id, "value": value}


@perdure.orchestration
async def parent(ctx: perdure.OrchestrationContext) -> list[object]:
    first = await ctx.schedule_sub_orchestration(child, 3)
    named = await ctx.schedule_sub_orchestration(
        "child", 4, instance_id=f"{ctx.instance_id}-named"
    )
    try:
        await ctx.schedule_sub_orchestration(child, -1)
    except perdure.SubOrchestrationFailed as exc:
        failure: object = [type(exc).__name__, exc.instance_id, str(exc)]
    return [first, named, failure]


@perdure.orchestration
async def failing_parent(ctx: perdure.OrchestrationContext) -> None:
    await ctx.schedule_sub_orchestration(child, -7)


@perdure.orchestration
async def sleeper(ctx: perdure.OrchestrationContext, depth: int) -> object:
    # A chain of children that wait forever, to be cancelled from the top.
    if depth > 0:
        return await ctx.schedule_sub_orchestration(sleeper, depth - 1)
    return await ctx.schedule_wait("never")


@perdure.orchestration
async def launcher(ctx: perdure.OrchestrationContext, target: str) -> str:
    ctx.start_orchestration(detached, target, {"from": ctx.instance_id})
    return "launched"


@perdure.orchestration
async def launch_and_wait(ctx: perdure.OrchestrationContext, target: str) -> object:
    ctx.start_orchestration(detached, target, {"from": ctx.instance_id})
    return await ctx.schedule_wait("never")


@perdure.orchestration
async def detached(ctx: perdure.OrchestrationContext, data: dict[str, str]) -> str:
    done = await ctx.schedule_wait("finish")
    return f"{data['from']}:{done}"


ORCHS: list[Callable[..., Any]] = [
    child,
    parent,
    failing_parent,
    sleeper,
    launcher,
    launch_and_wait,
    detached,
]
ACTS: list[Callable[..., Any]] = [double]


async def parent_scenario(client: perdure.Client, iid: str) -> object:
    return outcome(await perdure_wait(client, iid, parent))


async def perdure_wait(
    client: perdure.Client, iid: str, name: str | Callable[..., Any], input: Any = None
) -> perdure.OrchestrationState:
    await client.start_orchestration(iid, name, input)
    return await client.wait_for_orchestration(iid, WAIT)


async def test_sub_orchestration_outputs_ids_and_failure(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, parent_scenario, "p"
    )
    assert summary["status"] == "Completed", summary
    first, named, failure = summary["output"]
    scheduled = of_type(history, h.SubOrchestrationScheduled)
    # Default child id: f"{parent}::sub::{event_id}".
    assert first == {"id": f"p-cached::sub::{scheduled[0].event_id}", "value": 6}
    assert scheduled[0].instance_id == first["id"]
    assert named == {"id": "p-cached-named", "value": 8}
    assert scheduled[1].instance_id == "p-cached-named"
    kind, failed_id, message = failure
    assert kind == "SubOrchestrationFailed"
    assert failed_id == f"p-cached::sub::{scheduled[2].event_id}"
    assert "negative input -1" in message
    (failed,) = of_type(history, h.SubOrchestrationFailed)
    assert failed.error["message"] == "negative input -1"
    assert failed.error["type"] == "ValueError"
    assert [
        e.source_event_id for e in of_type(history, h.SubOrchestrationCompleted)
    ] == [
        scheduled[0].event_id,
        scheduled[1].event_id,
    ]


async def test_children_are_instances_of_their_own(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        await perdure_wait(rt.client, "p", parent)
        history = await rt.client.get_history("p")
        child_id = of_type(history, h.SubOrchestrationScheduled)[0].instance_id
        state = await rt.client.get_status(child_id)
        assert state is not None and state.status == "Completed"
        assert state.name == "child" and state.output == {"id": child_id, "value": 6}
        child_history = await rt.client.get_history(child_id)
        start = child_history[0]
        assert isinstance(start, h.OrchestrationStarted) and start.parent is not None
        assert start.parent["instance_id"] == "p"


async def test_unhandled_child_failure_fails_parent(storage_url: str) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        return outcome(await perdure_wait(client, iid, failing_parent))

    summary, _ = await check_replay(storage_url, ORCHS, ACTS, scenario, "fp")
    assert summary["status"] == "Failed"
    assert "negative input -7" in summary["error"]["message"]
    assert summary["error"]["category"] == "application"


async def cancel_chain_scenario(client: perdure.Client, iid: str) -> object:
    await client.start_orchestration(iid, sleeper, 2)
    grandchild = f"{iid}::sub::2::sub::2"

    await reached(client, grandchild, h.EventWaitStarted)
    await client.cancel_instance(iid, "stop everything")
    states = [
        await client.wait_for_orchestration(x, WAIT)
        for x in (iid, f"{iid}::sub::2", grandchild)
    ]
    return [outcome(s) for s in states]


async def test_cancelling_parent_cancels_children(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, cancel_chain_scenario, "chain"
    )
    assert [s["status"] for s in summary] == ["Cancelled"] * 3
    assert summary[0]["error"]["message"] == "stop everything"
    # Each child says who cancelled it and why (new-user trial §4).
    assert summary[1]["error"]["message"] == (
        "cancelled by parent chain-cached: stop everything"
    )
    assert types_tail(history) == [
        "OrchestrationCancelRequested",
        "SubOrchestrationCancelRequested",
        "OrchestrationCancelled",
    ]
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        leaf = await rt.client.get_history("chain-cached::sub::2::sub::2")
    assert [e.type for e in leaf][-2:] == [
        "EventWaitCancelled",
        "OrchestrationCancelled",
    ]


def types_tail(history: Iterable[perdure.Event]) -> list[str]:
    return [e.type for e in history][-3:]


async def detached_scenario(client: perdure.Client, iid: str) -> object:
    target = f"{iid}-detached"
    launched = await perdure_wait(client, iid, launcher, target)
    running = await client.get_status(target)
    assert running is not None and running.status == "Running"
    await client.raise_event(target, "finish", "ok")
    return [
        outcome(launched),
        outcome(await client.wait_for_orchestration(target, WAIT)),
    ]


async def test_detached_orchestration_outlives_its_starter(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, detached_scenario, "launch"
    )
    assert summary[0]["output"] == "launched"
    assert summary[1]["status"] == "Completed"
    assert summary[1]["output"] == "launch-cached:ok"
    (chained,) = of_type(history, h.OrchestrationChained)
    assert chained.instance_id == "launch-cached-detached"
    assert chained.name == "detached"


async def test_detached_orchestration_survives_parent_cancel(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        client = rt.client
        await client.start_orchestration("l", launch_and_wait, "d")
        await eventually(lambda: client.get_status("d"), "the detached instance")
        await client.cancel_instance("l")
        assert (await client.wait_for_orchestration("l", WAIT)).status == "Cancelled"
        history = await client.get_history("l")
        assert "SubOrchestrationCancelRequested" not in [e.type for e in history]
        await client.raise_event("d", "finish", "still here")
        state = await client.wait_for_orchestration("d", WAIT)
        assert state.status == "Completed" and state.output == "l:still here"
