"""Probe F5: a turn that never yields is stopped after ``turn_timeout``.

The instance ends Failed with ``TurnTimeout``; every other instance, the
activity worker and shutdown keep working. Each scenario runs on its own
event loop in a thread, so that a regression fails the test instead of
freezing the test process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from _helpers import WAIT, outcome, runtime

import perdure
from perdure import OrchestrationContext
from perdure._supervise import RuntimeFailed
from perdure._watchdog import STUCK_AFTER

LIMIT = 0.5


@perdure.activity(name="Echo")
async def echo(ctx: perdure.ActivityContext, value: Any) -> Any:
    return value


@perdure.orchestration(name="Spin")
async def spin(ctx: OrchestrationContext) -> None:
    await ctx.schedule_activity(echo, 1)
    while True:
        pass


@perdure.orchestration(name="SpinAtOnce")
async def spin_at_once(ctx: OrchestrationContext) -> None:
    while True:
        pass


@perdure.orchestration(name="SpinSwallowing")
async def spin_swallowing(ctx: OrchestrationContext) -> None:
    await ctx.schedule_timer(0.01)
    n = 0
    while True:
        try:  # noqa: SIM105 (the point: a try around the spinning code)
            n += len(str(n))
        except BaseException:
            pass


@perdure.orchestration(name="SpinChild")
async def spin_child(ctx: OrchestrationContext) -> str:
    try:
        await ctx.schedule_sub_orchestration(spin_at_once, instance_id="child")
    except perdure.SubOrchestrationFailed as exc:
        return exc.error.type
    return "no error"


@perdure.orchestration(name="Normal")
async def normal(ctx: OrchestrationContext, i: int) -> int:
    value = await ctx.schedule_activity(echo, i)
    await ctx.schedule_timer(0.2)
    return int(value)


HANDLERS: list[Callable[..., Any]] = [
    spin,
    spin_at_once,
    spin_swallowing,
    spin_child,
    normal,
]


def in_thread(seconds: float, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``make()`` on a fresh event loop in a daemon thread, bounded."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the runtime is still frozen after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def timeout_error(iid: str, limit: float = LIMIT) -> dict[str, Any]:
    return {
        "status": "Failed",
        "output": None,
        "error": {
            "type": "TurnTimeout",
            "message": f"a turn of instance {iid!r} ran longer than turn_timeout "
            f"({limit} s) without yielding, and was stopped",
            "category": "application",
        },
    }


def test_runaway_turns_fail_alone(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> tuple[dict[str, Any], float]:
        rt = runtime(storage_url, HANDLERS, [echo], turn_timeout=LIMIT)
        await rt.start()
        client = rt.client
        for iid, name in (
            ("spin", "Spin"),
            ("at-once", "SpinAtOnce"),
            ("swallowing", "SpinSwallowing"),
            ("parent", "SpinChild"),
        ):
            await client.start_orchestration(iid, name)
        for i in range(5):
            await client.start_orchestration(f"normal-{i}", "Normal", i)
        states = {
            iid: outcome(await client.wait_for_orchestration(iid, timeout=WAIT))
            for iid in (
                "spin",
                "at-once",
                "swallowing",
                "parent",
                "child",
                *(f"normal-{i}" for i in range(5)),
            )
        }
        begun = time.monotonic()
        await rt.shutdown()
        assert rt.failed is None
        return states, time.monotonic() - begun

    with caplog.at_level(logging.ERROR, logger="perdure.dispatcher"):
        states, shutdown = in_thread(60, scenario)
    for iid in ("spin", "at-once", "swallowing", "child"):
        assert states[iid] == timeout_error(iid)
    assert states["parent"]["output"] == "TurnTimeout"
    for i in range(5):
        assert states[f"normal-{i}"] == {
            "status": "Completed",
            "output": i,
            "error": None,
        }
    assert shutdown < 3.0
    # The stack is logged with the instance id, down to the spinning line.
    stacks = {
        r.getMessage().partition(" ran longer")[0]: r.getMessage()
        for r in caplog.records
        if "its stack when it was stopped" in r.getMessage()
    }
    assert "in spin_at_once\n" in stacks["the turn of at-once"]
    assert "in spin\n" in stacks["the turn of spin"]


@perdure.orchestration(name="Stuck")
async def stuck(ctx: OrchestrationContext) -> str:
    # Swallows every RunawayTurn in an inner loop: cannot be stopped.
    while not RELEASE.is_set():
        try:
            while not RELEASE.is_set():
                pass
        except BaseException:
            pass
    return "released"


RELEASE = threading.Event()


def test_unstoppable_turn_fails_the_runtime(sqlite_url: str) -> None:
    RELEASE.clear()
    lost: list[RuntimeFailed] = []
    holder: dict[str, perdure.Runtime] = {}

    async def scenario() -> tuple[dict[str, Any], BaseException | None]:
        rt = runtime(sqlite_url, [stuck], turn_timeout=0.2)
        rt._on_stuck = lost.append
        holder["rt"] = rt
        await rt.start()
        await rt.client.start_orchestration("stuck", "Stuck")
        state = await rt.client.wait_for_orchestration("stuck", timeout=WAIT)
        try:
            await rt.shutdown()
        except RuntimeFailed as exc:
            return outcome(state), exc
        return outcome(state), None

    def release_when_lost() -> None:
        deadline = time.monotonic() + 20
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        RELEASE.set()

    helper = threading.Thread(target=release_when_lost, daemon=True)
    helper.start()
    begun = time.monotonic()
    output, error = in_thread(60, scenario)
    assert lost, "the watchdog never reported the lost loop"
    assert time.monotonic() - begun > STUCK_AFTER * 0.2
    assert "'stuck'" in str(lost[0])
    assert holder["rt"].failed is lost[0]
    assert error is lost[0]
    # The code swallowed every stop; once released it finished normally,
    # unless one more RunawayTurn landed outside its try.
    assert output["output"] == "released" or output == timeout_error("stuck", 0.2)


SPINNING = threading.Event()


@perdure.orchestration(name="SpinFlagged")
async def spin_flagged(ctx: OrchestrationContext) -> None:
    SPINNING.set()
    while True:
        pass


def test_other_runtime_keeps_working_on_postgres(storage_url: str) -> None:
    """Probe F5 froze all three PostgreSQL runtimes; now only one turn stalls."""
    if not storage_url.startswith("postgresql"):
        pytest.skip("several runtimes on one storage: the PostgreSQL case")
    SPINNING.clear()
    limit = 3.0
    release = threading.Event()

    async def frozen_one() -> None:
        # Runs the spinning turn: its loop stalls for `limit` seconds.
        rt = runtime(
            storage_url,
            [spin_flagged, normal],
            [echo],
            turn_timeout=limit,
            lock_timeout=10.0,
        )
        async with rt:
            await rt.client.start_orchestration("spin", "SpinFlagged")
            while not release.is_set():
                await asyncio.sleep(0.05)

    async def other_one() -> tuple[list[float], dict[str, Any], dict[str, Any]]:
        rt = runtime(
            storage_url,
            [spin_flagged, normal],
            [echo],
            turn_timeout=limit,
            lock_timeout=10.0,
        )
        async with rt:
            client = rt.client
            while not SPINNING.is_set():
                await asyncio.sleep(0.01)
            begun = time.monotonic()
            for i in range(10):
                await client.start_orchestration(f"normal-{i}", "Normal", i)
            done = []
            for i in range(10):
                state = await client.wait_for_orchestration(f"normal-{i}", timeout=WAIT)
                assert state.status == "Completed"
                done.append(time.monotonic() - begun)
            spun = await client.wait_for_orchestration("spin", timeout=WAIT)
            # A fresh instance after the stop runs on either runtime.
            await client.start_orchestration("after", "Normal", 99)
            after = await client.wait_for_orchestration("after", timeout=WAIT)
            release.set()
            return done, outcome(spun), outcome(after)

    frozen = threading.Thread(target=lambda: in_thread(60, frozen_one), daemon=True)
    frozen.start()
    done, spun, after = in_thread(60, other_one)
    frozen.join(10)
    assert not frozen.is_alive()
    # Every normal instance completed while the other runtime was stalled.
    assert max(done) < limit, done
    assert spun == timeout_error("spin", limit)
    assert after["output"] == 99
