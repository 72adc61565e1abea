"""Activity routing and flow control across runtime processes on PostgreSQL.

Runtime subprocesses (``mp_routing_app.py``) share a fresh schema; every
activity run is recorded in the database, so the checks use one clock and
one order: the concurrency limit (an atomic counter of running limited
activities), the rate limit (the database time of each fetch that started
one), tags, unregistered activities and sessions (which process ran what).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mp_routing_app import CONCURRENCY, RATE
from test_multiprocess import _announced, _drop, _postgres_url, _ready

import perdure

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APP = Path(__file__).with_name("mp_routing_app.py")
WAIT = 120.0


class Cluster:
    """Runtime processes on one schema; stopped and dropped at the end."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.schema = f"perdure_mpr_{uuid.uuid4().hex[:10]}"
        self.url = f"{base}{'&' if '?' in base else '?'}schema={self.schema}"
        self.procs: list[asyncio.subprocess.Process] = []

    async def spawn(self, *extra: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(APP),
            self.url,
            *extra,
            stdout=asyncio.subprocess.PIPE,
            cwd=APP.parent,
        )
        self.procs.append(proc)
        await _ready(proc)
        return proc

    async def rows(self, sql: str) -> list[Any]:
        conninfo = self.base.split("?")[0]
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            cursor = await conn.execute(sql.replace("{s}", f'"{self.schema}"'))
            return await cursor.fetchall()

    async def runs(self, kind: str) -> list[tuple[int, int, float | None]]:
        """``(pid, n, claimed_at)`` of each run of *kind*."""
        return await self.rows(
            "SELECT pid, n, claimed_at FROM {s}.routing_runs"
            f" WHERE kind = '{kind}' ORDER BY claimed_at, n"
        )


@asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster(_postgres_url())
    try:
        yield c
        for proc in c.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in c.procs)), 30)
        assert all(code in (0, -signal.SIGKILL) for code in codes), codes
    finally:
        for proc in c.procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await _drop(c.base, c.schema)


async def _run_all(client: perdure.Client, plans: dict[str, Any], wf: str) -> None:
    for iid, plan in plans.items():
        await client.start_orchestration(iid, wf, plan)
    for iid in plans:
        state = await client.wait_for_orchestration(iid, WAIT)
        assert state.status == "Completed", (iid, state.error)


async def test_a_concurrency_limit_holds_across_three_processes() -> None:
    async with cluster() as c:
        # Starts are homed on one runtime while it keeps up (_pg_members),
        # so its worker gets the work first; with room for 2 there, the
        # rest goes to the other two processes' workers.
        for _ in range(3):
            await c.spawn("--slots", "2")
        await _announced(c.base, c.schema, 3)
        async with perdure.Client(c.url) as client:
            plans = {f"c-{i}": {"name": "capped", "count": 6} for i in range(8)}
            await _run_all(client, plans, "fan")
        [(running, top)] = await c.rows("SELECT running, top FROM {s}.routing_counter")
        runs = await c.runs("capped")
    assert len(runs) == 48 and running == 0
    # The three processes could run 6 at once: only the shared limit held it.
    assert CONCURRENCY < 2 * 3
    assert top <= CONCURRENCY, top
    assert len({pid for pid, _, _ in runs}) >= 2, "work was not shared"


async def test_a_rate_limit_holds_across_three_processes() -> None:
    count, window = RATE
    async with cluster() as c:
        for _ in range(3):
            await c.spawn("--lock", "30")
        async with perdure.Client(c.url) as client:
            plans = {f"r-{i}": {"name": "rated", "count": 10} for i in range(3)}
            await _run_all(client, plans, "fan")
        runs = await c.runs("rated")
    starts = sorted(at for _, _, at in runs if at is not None)
    assert len(starts) == 30
    # No window (t - window, t] holds more than `count` starts (1 ms of
    # slack for the float arithmetic of the recorded times).
    busiest = max(sum(1 for s in starts if t - window + 1e-3 < s <= t) for t in starts)
    assert busiest <= count, busiest
    assert starts[-1] - starts[0] >= window * (30 // count - 1) - 1e-3


async def test_tagged_work_runs_only_in_the_tagged_process() -> None:
    async with cluster() as c:
        gpu = await c.spawn("--tags", "gpu")
        for _ in range(2):
            await c.spawn()
        async with perdure.Client(c.url) as client:
            plans = {
                "gpu": {"name": "where", "count": 30, "tag": "gpu"},
                "any": {"name": "where", "count": 30},
            }
            await _run_all(client, plans, "fan")
            tagged = (await client.get_status("gpu")).output  # type: ignore[union-attr]
            plain = (await client.get_status("any")).output  # type: ignore[union-attr]
    assert set(tagged) == {gpu.pid}
    assert len(plain) == 30


async def test_an_unregistered_activity_waits_for_a_process_that_has_it() -> None:
    async with cluster() as c:
        lacking = await c.spawn("--without", "rare")
        async with perdure.Client(c.url) as client:
            await client.start_orchestration("r", "fan", {"name": "rare", "count": 3})
            await asyncio.sleep(2.0)  # several fetches of the lacking process
            state = await client.get_status("r")
            assert state is not None and state.status == "Running"
            assert await c.runs("rare") == []
            having = await c.spawn()
            state = await client.wait_for_orchestration("r", WAIT)
        assert state.status == "Completed" and set(state.output) == {having.pid}
        assert lacking.returncode is None


async def test_a_session_moves_to_another_process_when_its_owner_dies() -> None:
    async with cluster() as c:
        procs = [await c.spawn(), await c.spawn()]
        async with perdure.Client(c.url) as client:
            await client.start_orchestration("s", "steps", 30)
            deadline = time.monotonic() + WAIT
            while len(await c.runs("step")) < 4:
                assert time.monotonic() < deadline, "the session never started"
                await asyncio.sleep(0.05)
            [owner] = {pid for pid, _, _ in await c.runs("step")}
            victim = next(p for p in procs if p.pid == owner)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            state = await client.wait_for_orchestration("s", WAIT)
    assert state.status == "Completed"
    pids = state.output
    # The session stayed on its owner, then moved, once, to the survivor.
    survivor = next(p.pid for p in procs if p.pid != owner)
    moved = pids.index(survivor)
    assert moved >= 3 and pids[:moved] == [owner] * moved
    assert pids[moved:] == [survivor] * (len(pids) - moved)
