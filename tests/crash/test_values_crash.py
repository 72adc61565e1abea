"""Instance values survive SIGKILLs at turn boundaries (SQLite and PostgreSQL).

A worker subprocess runs `values_app.tally` and is killed three times: in
the first execution, right after the continue-as-new, and in the second
execution. After each kill, what survived is consistent: the values stored
on the instance are exactly those its stored history sets (they were
committed together). A runtime in this process then finishes the
instance: the values it ends with are the expected ones, and a replay of
each execution's history gives the same values.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import values_app

import perdure
from perdure._core._values import fold_values
from perdure.testing import replay

HERE = Path(__file__).parent
LOCK_TIMEOUT = 1.0
IID = "tally-1"

Probe = Callable[[perdure.Client], Awaitable[bool]]


async def consistent(client: perdure.Client) -> dict[str, Any]:
    """The stored values, checked against the stored history."""
    values = await client.get_values(IID)
    assert values == fold_values(await client.get_history(IID))
    return values


async def kill_worker_when(url: str, out: Path, ready: Probe) -> dict[str, Any]:
    """Run ``perdure worker values_app``; SIGKILL it once *ready*."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    with out.open("a") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "perdure", "worker", "values_app",
            "--db", url, "--lock-timeout", str(LOCK_TIMEOUT),
            "--poll-interval", "0.02",
            env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    async with perdure.Client(url) as client:
        try:
            deadline = time.monotonic() + 60
            while not await ready(client):
                assert proc.returncode is None, worker_output(out)
                assert time.monotonic() < deadline, worker_output(out)
                await asyncio.sleep(0.005)
        finally:
            proc.kill()
            await proc.wait()
        return await consistent(client)


def worker_output(out: Path) -> str:
    return out.read_text()


def on_execution(execution: int, events: int) -> Probe:
    async def probe(client: perdure.Client) -> bool:
        state = await client.get_status(IID)
        if state is None or state.execution_id < execution:
            return False
        return len(await client.get_history(IID, execution)) >= events

    return probe


async def test_values_survive_kills_and_continue_as_new(
    storage_url: str, tmp_path: Path
) -> None:
    log, out = str(tmp_path / "steps.log"), tmp_path / "worker.out"
    async with perdure.Client(storage_url) as client:
        await client.start_orchestration(IID, "Tally", {"log": log, "round": 0})
    first = await kill_worker_when(storage_url, out, on_execution(1, 6))
    assert first["round"] == 0 and first["status"].startswith("running 0.")
    carried = await kill_worker_when(storage_url, out, on_execution(2, 1))
    assert carried["done"][:3] == ["0.0", "0.1", "0.2"]
    await kill_worker_when(storage_url, out, on_execution(2, 6))

    async with perdure.Runtime(
        storage_url,
        orchestrations=values_app.ORCHESTRATIONS,
        activities=values_app.ACTIVITIES,
        lock_timeout=LOCK_TIMEOUT,
        poll_interval=0.02,
    ) as runtime:
        client = runtime.client
        state = await client.wait_for_orchestration(IID, timeout=60)
        assert (state.status, state.output) == ("Completed", 6), state.error
        assert await consistent(client) == values_app.EXPECTED_VALUES
        # The new execution starts with what the old one ended with.
        start = (await client.get_history(IID, 2))[0]
        assert isinstance(start, perdure.events.OrchestrationStarted)
        assert start.values is not None
        assert start.values["done"] == ["0.0", "0.1", "0.2"]
        for execution in (1, 2):
            history = await client.get_history(IID, execution)
            result = replay(
                values_app.tally, history, instance_id=IID, execution_id=execution
            )
            assert result.status == history[-1].status
