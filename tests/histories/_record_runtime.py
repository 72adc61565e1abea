"""Golden-history scenarios recorded on a real Runtime (SQLite file).

For what the Simulator cannot drive: continue-as-new past the first
execution, real child instances, worker-side retries. Imported by
``record.py`` for its registrations.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import _programs as p
from _recording import FAST, WAIT, Recording, Scenario, add

import perdure
from perdure.providers import open_provider

if TYPE_CHECKING:
    from perdure.providers._base import TurnCommit

# -------------------------------------------------------------- Runtime

TurnLog = dict[tuple[str, int], list[list[int]]]


async def _on_runtime(
    orchestrations: list[Callable[..., Any]],
    activities: list[Callable[..., Any]],
    body: Callable[[perdure.Client, TurnLog], Coroutine[Any, Any, list[Recording]]],
) -> list[Recording]:
    """Run *body* against a fresh SQLite runtime, logging committed turns."""
    with tempfile.TemporaryDirectory() as tmp:
        provider = open_provider(f"sqlite:///{tmp}/golden.db")
        turns: TurnLog = defaultdict(list)
        original = provider.commit_turns

        async def commit_turns(commits: Sequence[TurnCommit]) -> list[bool]:
            results = await original(commits)
            for commit, ok in zip(commits, results, strict=True):
                if ok and commit.events:
                    turns[(commit.instance_id, commit.execution_id)].append(
                        [commit.events[0][0], commit.events[-1][0]]
                    )
            return results

        # Wraps the verb on this one object to log each turn's event ids.
        provider.commit_turns = commit_turns  # type: ignore[method-assign,assignment]
        try:
            async with perdure.Runtime(
                provider,
                orchestrations=orchestrations,
                activities=activities,
                **FAST,
            ) as rt:
                return await body(rt.client, turns)
        finally:
            await provider.close()


async def _read(
    client: perdure.Client,
    turns: TurnLog,
    name: str,
    description: str,
    orchestration: Callable[..., Any],
    instance_id: str,
    execution_id: int = 1,
    activities: tuple[Callable[..., Any], ...] = (),
) -> Recording:
    events = await client.get_history(instance_id, execution_id)
    spans = turns[(instance_id, execution_id)]
    expected_start = 1
    for first, last in spans:
        assert first == expected_start, (name, spans)
        expected_start = last + 1
    assert expected_start == len(events) + 1, (name, spans, len(events))
    return Recording(
        name,
        description,
        orchestration,
        instance_id,
        events,
        [list(s) for s in spans],
        execution_id,
        activities,
        "Runtime(sqlite)",
    )


async def _wait_status(client: perdure.Client, iid: str, value: Any) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while loop.time() < deadline:
        state = await client.get_status(iid)
        if state is not None and state.custom_status == value:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{iid} never reached custom status {value!r}")


def runtime_scenario(
    *files: str,
) -> Callable[
    [Callable[[], Coroutine[Any, Any, list[Recording]]]],
    Callable[[], Coroutine[Any, Any, list[Recording]]],
]:
    """Register a Runtime scenario that writes *files*."""

    def register(
        fn: Callable[[], Coroutine[Any, Any, list[Recording]]],
    ) -> Callable[[], Coroutine[Any, Any, list[Recording]]]:
        description = " ".join((fn.__doc__ or "").split())
        add(Scenario(fn.__name__, description, files, lambda: asyncio.run(fn())))
        return fn

    return register


@runtime_scenario("rt_dataclass_payloads")
async def rt_dataclass_payloads() -> list[Recording]:
    """Runtime: a sync and an async activity exchanging dataclasses."""
    name = "rt_dataclass_payloads"
    acts = (p.rate_package, p.pick_carrier)

    async def body(client: perdure.Client, turns: TurnLog) -> list[Recording]:
        iid = f"golden-{name}"
        await client.start_orchestration(
            iid, p.dataclass_payloads, p.Parcel(sku="sku-1", weight=4.2)
        )
        state = await client.wait_for_orchestration(iid, timeout=WAIT)
        assert state.status == "Completed", state.error
        desc = rt_dataclass_payloads.__doc__ or ""
        return [
            await _read(
                client, turns, name, desc, p.dataclass_payloads, iid, activities=acts
            )
        ]

    return await _on_runtime([p.dataclass_payloads], list(acts), body)


@runtime_scenario("rt_retries")
async def rt_retries() -> list[Recording]:
    """Runtime: RetryPolicy; one activity succeeds on attempt 3, one gives
    up after 3 attempts; retries add no events to the history."""
    name = "rt_retries"

    async def body(client: perdure.Client, turns: TurnLog) -> list[Recording]:
        iid = f"golden-{name}"
        await client.start_orchestration(iid, p.retries, "k1")
        state = await client.wait_for_orchestration(iid, timeout=WAIT)
        assert state.status == "Completed", state.error
        assert p.FLAKY_ATTEMPTS["k1"] == 3
        desc = rt_retries.__doc__ or ""
        return [await _read(client, turns, name, desc, p.retries, iid)]

    return await _on_runtime([p.retries], [p.flaky, p.always_fails], body)


@runtime_scenario("rt_continue_as_new_exec1", "rt_continue_as_new_exec2")
async def rt_continue_as_new() -> list[Recording]:
    """Runtime: continue-as-new with an unconsumed event ("Extra") carried
    into the next execution; one file per execution."""
    name = "rt_continue_as_new"

    async def body(client: perdure.Client, turns: TurnLog) -> list[Recording]:
        iid = f"golden-{name}"
        await client.start_orchestration(
            iid, p.continue_as_new_carry, {"round": 1, "n": 0}
        )
        await client.raise_event(iid, "Extra", {"carried": True})
        await client.raise_event(iid, "Go", "go!")
        state = await client.wait_for_orchestration(iid, timeout=WAIT)
        assert state.status == "Completed", state.error
        assert state.execution_id == 2, state
        desc = " ".join((rt_continue_as_new.__doc__ or "").split())
        return [
            await _read(
                client,
                turns,
                f"{name}_exec{exe}",
                f"{desc} Execution {exe}.",
                p.continue_as_new_carry,
                iid,
                exe,
            )
            for exe in (1, 2)
        ]

    return await _on_runtime([p.continue_as_new_carry], [p.tick_activity], body)


@runtime_scenario(
    "rt_sub_orchestrations_parent",
    "rt_sub_orchestrations_child_ok",
    "rt_sub_orchestrations_child_failed",
)
async def rt_sub_orchestrations() -> list[Recording]:
    """Runtime: a parent joins two real children (return_exceptions); one
    completes, one fails; parent and both children recorded."""
    name = "rt_sub_orchestrations"

    async def body(client: perdure.Client, turns: TurnLog) -> list[Recording]:
        iid = f"golden-{name}"
        await client.start_orchestration(iid, p.rt_parent, [3, -1])
        state = await client.wait_for_orchestration(iid, timeout=WAIT)
        assert state.status == "Completed", state.error
        history = await client.get_history(iid)
        children = [e for e in history if e.type == "SubOrchestrationScheduled"]
        ok_id, failed_id = (str(getattr(e, "instance_id", "")) for e in children)
        for child in (ok_id, failed_id):
            await client.wait_for_orchestration(child, timeout=WAIT)
        desc = " ".join((rt_sub_orchestrations.__doc__ or "").split())
        return [
            await _read(client, turns, f"{name}_parent", desc, p.rt_parent, iid),
            await _read(
                client,
                turns,
                f"{name}_child_ok",
                f"{desc} The child that completes.",
                p.rt_child,
                ok_id,
            ),
            await _read(
                client,
                turns,
                f"{name}_child_failed",
                f"{desc} The child that fails.",
                p.rt_child,
                failed_id,
            ),
        ]

    return await _on_runtime([p.rt_parent, p.rt_child], [p.double], body)


@runtime_scenario("rt_cancel_instance_parent", "rt_cancel_instance_child")
async def rt_cancel_instance() -> list[Recording]:
    """Runtime: Client.cancel_instance on a parent whose nested block holds
    a running activity, a timer and a waiting child; the child is cancelled
    too."""
    name = "rt_cancel_instance"

    async def body(client: perdure.Client, turns: TurnLog) -> list[Recording]:
        iid = f"golden-{name}"
        await client.start_orchestration(iid, p.rt_cancel_target)
        await _wait_status(client, iid, "started")
        history = await client.get_history(iid)
        (child,) = (
            str(getattr(e, "instance_id", ""))
            for e in history
            if e.type == "SubOrchestrationScheduled"
        )
        await _wait_status(client, child, "waiting")
        await asyncio.sleep(0.2)  # let the worker pick up the Hang activity
        await client.cancel_instance(iid, "operator stop")
        state = await client.wait_for_orchestration(iid, timeout=WAIT)
        assert state.status == "Cancelled", state
        child_state = await client.wait_for_orchestration(child, timeout=WAIT)
        assert child_state.status == "Cancelled", child_state
        await asyncio.sleep(0.5)  # the cancelled activity's late answer
        desc = " ".join((rt_cancel_instance.__doc__ or "").split())
        return [
            await _read(client, turns, f"{name}_parent", desc, p.rt_cancel_target, iid),
            await _read(
                client,
                turns,
                f"{name}_child",
                f"{desc} The child.",
                p.rt_waiting_child,
                child,
            ),
        ]

    return await _on_runtime([p.rt_cancel_target, p.rt_waiting_child], [p.hang], body)


@runtime_scenario("rt_patched_rounds_exec1", "rt_patched_rounds_exec2")
async def rt_patched_rounds() -> list[Recording]:
    """Runtime: ctx.patched in both executions of a continue-as-new; each
    decides afresh and writes its own marker."""
    name = "rt_patched_rounds"

    async def body(client: perdure.Client, turns: TurnLog) -> list[Recording]:
        iid = f"golden-{name}"
        await client.start_orchestration(iid, p.patched_rounds, {"round": 1, "n": 0})
        state = await client.wait_for_orchestration(iid, timeout=WAIT)
        assert state.status == "Completed", state.error
        assert state.execution_id == 2, state
        desc = " ".join((rt_patched_rounds.__doc__ or "").split())
        return [
            await _read(
                client,
                turns,
                f"{name}_exec{exe}",
                f"{desc} Execution {exe}.",
                p.patched_rounds,
                iid,
                exe,
            )
            for exe in (1, 2)
        ]

    return await _on_runtime([p.patched_rounds], [p.tick_activity], body)
