"""A deploy by crash: SIGKILL the v1 worker, then the v2 worker, mid-flight.

``old`` starts under v1 (`patched_app.flow_v1`), whose worker is killed
once the instance has passed the patch point (step ``b`` scheduled, maybe
running, its lease held). ``new`` starts after that; a v2 worker
(`patched_app.flow_v2`) takes both over and is killed right after the turn
that wrote ``new``'s marker committed. A runtime with v2 in this process
finishes both: ``old`` on the old branch without a marker, ``new`` on the
new one with exactly one marker, its decision surviving the crash.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import patched_app

import perdure
from perdure._core._history import ActivityCompleted, ActivityScheduled, PatchApplied

HERE = Path(__file__).parent
LOCK_TIMEOUT = 1.0

Histories = dict[str, list[perdure.Event]]


async def histories(client: perdure.Client) -> Histories:
    found: Histories = {}
    for iid in ("old", "new"):
        try:
            found[iid] = list(await client.get_history(iid))
        except perdure.InstanceNotFound:
            found[iid] = []
    return found


def worker_output(out: Path) -> str:
    return out.read_text()


async def kill_worker_when(
    url: str, spec: str, out: Path, ready: Callable[[Histories], bool]
) -> Histories:
    """Run ``perdure worker SPEC``; SIGKILL it once *ready*; return histories."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    with out.open("a") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "perdure", "worker", spec,
            "--db", url, "--lock-timeout", str(LOCK_TIMEOUT),
            "--poll-interval", "0.02",
            env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    async with perdure.Client(url) as client:
        try:
            deadline = time.monotonic() + 60
            while not ready(await histories(client)):
                assert proc.returncode is None, worker_output(out)
                assert time.monotonic() < deadline, worker_output(out)
                await asyncio.sleep(0.005)
        finally:
            proc.kill()
            await proc.wait()
        return await histories(client)


def names(history: list[perdure.Event]) -> list[str]:
    return [e.input["name"] for e in history if isinstance(e, ActivityScheduled)]


def markers(history: list[perdure.Event]) -> list[str]:
    return [e.patch_id for e in history if isinstance(e, PatchApplied)]


def completed_once(history: list[perdure.Event]) -> bool:
    scheduled = [e.event_id for e in history if isinstance(e, ActivityScheduled)]
    answers = [e.source_event_id for e in history if isinstance(e, ActivityCompleted)]
    return sorted(a or 0 for a in answers) == scheduled


async def test_a_crash_during_a_deploy_keeps_each_instance_on_its_branch(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'patched.db'}"
    log, out = str(tmp_path / "steps.log"), tmp_path / "worker.out"
    async with perdure.Client(url) as client:
        await client.start_orchestration("old", "PatchedFlow", log)

    def old_past_the_point(found: Histories) -> bool:
        return "b" in names(found["old"])

    v1_left = await kill_worker_when(url, "patched_app:V1", out, old_past_the_point)
    async with perdure.Client(url) as client:
        await client.start_orchestration("new", "PatchedFlow", log)

    def new_marker_committed(found: Histories) -> bool:
        return markers(found["new"]) == ["audit"]

    v2_left = await kill_worker_when(url, "patched_app:V2", out, new_marker_committed)

    async with perdure.Runtime(
        url,
        lock_timeout=LOCK_TIMEOUT,
        poll_interval=0.02,
        **patched_app.V2,
    ) as runtime:
        client = runtime.client
        states = {
            iid: await client.wait_for_orchestration(iid, timeout=60)
            for iid in ("old", "new")
        }
        final = await histories(client)

    assert states["old"].output == {
        "steps": ["a-ok", "b-ok", "c-ok"],
        "audited": [False, False],
    }
    assert states["new"].output == {
        "steps": ["a-ok", "audit-ok", "b-ok", "c-ok"],
        "audited": [True, True],
    }
    assert (names(final["old"]), markers(final["old"])) == (["a", "b", "c"], [])
    assert (names(final["new"]), markers(final["new"])) == (
        ["a", "audit", "b", "c"],
        ["audit"],
    )
    for iid in ("old", "new"):
        assert completed_once(final[iid]), final[iid]
        # Nothing that survived a kill was lost or rewritten.
        for left in (v1_left, v2_left):
            assert final[iid][: len(left[iid])] == left[iid], iid
