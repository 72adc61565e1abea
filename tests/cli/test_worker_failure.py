"""``perdure worker`` exits non-zero when its runtime stops working (probe F4,
F5) instead of staying up doing nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import perdure

# Every idle wait of the dispatcher fails: its loop dies again and again.
# Only the dispatcher's: when the activity worker's waits failed too, the
# loop that gave up first was a race (one CI run saw the worker's).
BROKEN_STORAGE = """
import perdure
from perdure import _supervise
from perdure.providers.sqlite import SqliteProvider

_supervise.MAX_RESTARTS = 1
_supervise.BACKOFF = 0.01
_wait = SqliteProvider.wait

async def broken_wait(self, channel, timeout):
    if channel == "orchestrations":
        raise perdure.StorageError("injected: waiting failed")
    return await _wait(self, channel, timeout)

SqliteProvider.wait = broken_wait

@perdure.orchestration(name="Noop")
async def noop(ctx):
    return None
"""

# A turn that swallows every RunawayTurn in an inner loop.
UNSTOPPABLE = """
import perdure

@perdure.orchestration(name="Stuck")
async def stuck(ctx):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
"""


def worker(tmp_path: Path, source: str, db: str, *extra: str) -> subprocess.Popen[str]:
    (tmp_path / "failing_app.py").write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    argv = [sys.executable, "-m", "perdure", "worker", "failing_app", "--db", db]
    return subprocess.Popen(
        [*argv, "--poll-interval", "0.05", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_worker_exits_when_a_loop_keeps_dying(tmp_path: Path) -> None:
    proc = worker(tmp_path, BROKEN_STORAGE, str(tmp_path / "db.sqlite"))
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert "loop died; restarting" in err
    assert "perdure: error: the dispatcher loop kept dying" in err


def test_worker_exits_when_a_turn_cannot_be_stopped(tmp_path: Path) -> None:
    db = str(tmp_path / "db.sqlite")
    # turn_timeout is capped at half the lock timeout: 0.2 s here.
    proc = worker(tmp_path, UNSTOPPABLE, db, "--lock-timeout", "0.4")
    try:
        assert proc.stdout is not None
        assert "perdure worker (pid" in proc.stdout.readline()

        async def start() -> None:
            async with perdure.Client(f"sqlite:///{db}") as client:
                await client.start_orchestration("stuck", "Stuck")

        asyncio.run(start())
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, err
    assert "perdure worker: the turn of instance 'stuck' ignored every attempt" in err
