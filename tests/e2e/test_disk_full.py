"""Disk full on a small volume: freeing space lets the work go on (probe F11).

After the first reclaim the WAL must stay small: left to grow towards its
usual 10,000 pages it refilled the freed space before the work was done,
and then nothing could be written or checkpointed again (the test failed
now and then, more often under load).

Runs on a 2 MiB tmpfs the test mounts (root only; skipped elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import runtime

import perdure
from perdure import ActivityContext, OrchestrationContext


@pytest.fixture
def small_volume() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = Path(tempfile.mkdtemp(prefix="perdure-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr!r}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


INSTANCES, STEPS = 40, 6


@perdure.activity(name="Chunk")
async def chunk(ctx: ActivityContext, i: int) -> str:
    return f"{i}:" + "x" * 8_000


@perdure.orchestration(name="Chunks")
async def chunks(ctx: OrchestrationContext, n: int) -> int:
    total = 0
    for i in range(STEPS):
        total += len(await ctx.schedule_activity("Chunk", n * 10 + i))
    return total


async def test_freeing_space_after_disk_full_lets_work_continue(
    small_volume: Path,
) -> None:
    filler = small_volume / "filler"
    url = f"sqlite:///{small_volume / 'full.db'}"
    async with runtime(url, [chunks], [chunk], lock_timeout=2.0) as rt:
        # Leave ~550 KB: the workload's WAL needs more before its first
        # automatic checkpoint (10,000 pages).
        free = os.statvfs(small_volume).f_bavail * os.statvfs(small_volume).f_frsize
        with filler.open("wb") as f:
            f.write(b"\0" * max(free - 550_000, 0))
        for n in range(INSTANCES):
            # Once full, a start is refused (and that instance not created).
            with contextlib.suppress(perdure.StorageError):
                await rt.client.start_orchestration(f"c{n}", "Chunks", n)
        await asyncio.sleep(3.0)  # the volume fills up; errors are logged
        filler.unlink()
        started = [s.instance_id for s in await rt.client.list_instances()]
        assert started, "nothing could be started"
        states = [
            await rt.client.wait_for_orchestration(iid, timeout=30) for iid in started
        ]
        # Since the disk was full, the WAL is kept small: it no longer fills
        # what was freed (then no checkpoint could make room again).
        assert (small_volume / "full.db-wal").stat().st_size <= 512 * 1024
    assert {s.status for s in states} == {"Completed"}
    for state in states:
        n = int(state.instance_id[1:])
        assert state.output == sum(len(f"{n * 10 + i}:") + 8_000 for i in range(STEPS))
