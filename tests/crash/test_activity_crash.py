"""SIGKILL a worker in the middle of an activity; the next runtime resumes it.

The idempotency key is the same in the killed attempt, in the attempt that
runs after the crash (another process) and in the retry after that; the
heartbeat details the killed attempt had stored (with its lease renewals)
reach the attempt after the crash, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import activity_crash_app as app

import perdure

HERE = Path(__file__).parent
LOCK_TIMEOUT = 1.5  # leases (and stored details) renewed every 0.5 s


def lines(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_killed_mid_activity_keeps_key_and_progress(
    storage_url: str, tmp_path: Path
) -> None:
    log, out = tmp_path / "transfer.log", tmp_path / "worker.out"
    async with perdure.Client(storage_url) as client:
        await client.start_orchestration("pay-1", "Payout", str(log))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    with out.open("a") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "perdure", "worker", "activity_crash_app",
            "--db", storage_url, "--lock-timeout", str(LOCK_TIMEOUT),
            "--poll-interval", "0.02",
            env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        # Past two lease renewals: the progress so far is stored.
        while sum(1 for line in lines(log) if line["event"] == "step") < 25:
            assert proc.returncode is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            await asyncio.sleep(0.01)
    finally:
        proc.kill()
        await proc.wait()
    killed = lines(log)
    last_step = max(line["step"] for line in killed if line["event"] == "step")
    assert last_step < app.STEPS - 1  # it was killed mid-activity

    async with perdure.Runtime(
        storage_url,
        orchestrations=app.ORCHESTRATIONS,
        activities=app.ACTIVITIES,
        lock_timeout=LOCK_TIMEOUT,
        poll_interval=0.02,
    ) as rt:
        state = await rt.client.wait_for_orchestration("pay-1", timeout=60)
    assert state.status == "Completed", state.error

    starts = [line for line in lines(log) if line["event"] == "start"]
    assert [s["attempt"] for s in starts] == [1, 2, 3]
    assert starts[0]["pid"] != starts[1]["pid"]  # another process took over
    # One scheduled activity, one key: before the crash, after it, retried.
    assert len({s["key"] for s in starts}) == 1
    assert starts[0]["key"].startswith("pay-1:1:2:")
    # The killed attempt's stored progress reached the next attempt (at most
    # one renewal interval behind), and the retry after that got it too.
    assert starts[0]["details"] is None
    resumed = starts[1]["details"]["step"]
    assert 0 <= resumed <= last_step
    assert starts[2]["details"] == starts[1]["details"]
    assert state.output == resumed + 1  # attempt 3 resumed after that step
