"""SIGKILL the worker running a rewind: in its rewind turn, and right after it.

``RewindFlow`` fails (`rewind_app.buggy`) with step ``b`` running, and is
rewound. A worker with the fix is killed in the middle of the rewind turn
(nothing of it is written; the rewind stays due); a second one is killed
right after the rewind turn committed (its marker in the history, ``b``
sent again). A runtime in this process finishes it: the same outcome as
without the kills, one marker, every step answered once, nothing that
survived a kill rewritten.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import rewind_app

import perdure
from perdure import events as h
from perdure._core._history import event_to_json

HERE = Path(__file__).parent
LOCK_TIMEOUT = 1.0
IID = "rewound"


async def kill_worker_when(
    url: str,
    out: Path,
    ready: Callable[[list[h.AnyEvent], list[str]], bool],
    log: Path,
    **env: str,
) -> list[h.AnyEvent]:
    """Run ``perdure worker rewind_app:FIXED``; SIGKILL it once *ready*."""
    path = os.pathsep.join([str(HERE), *sys.path])
    with out.open("a") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "perdure", "worker", "rewind_app:FIXED",
            "--db", url, "--lock-timeout", str(LOCK_TIMEOUT),
            "--poll-interval", "0.02",
            env={**os.environ, "PYTHONPATH": path, **env}, stdout=sink, stderr=sink,
        )  # fmt: skip
    async with perdure.Client(url) as client:
        try:
            deadline = time.monotonic() + 60
            while not ready(await client.get_history(IID), lines(log)):
                assert proc.returncode is None, output(out)
                assert time.monotonic() < deadline, output(out)
                await asyncio.sleep(0.005)
        finally:
            proc.kill()
            await proc.wait()
        return await client.get_history(IID)


def output(out: Path) -> str:
    return out.read_text()


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def rewound(history: list[h.AnyEvent]) -> bool:
    return any(isinstance(e, h.ExecutionRewound) for e in history)


async def test_a_rewind_survives_kills_in_and_after_its_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rewind.db'}"
    log, out = tmp_path / "steps.log", tmp_path / "worker.out"
    async with perdure.Runtime(
        url, **rewind_app.BUGGY, lock_timeout=LOCK_TIMEOUT, poll_interval=0.02
    ) as rt:
        await rt.client.start_orchestration(IID, "RewindFlow", str(log))
        failed = await rt.client.wait_for_orchestration(IID, timeout=60)
    assert failed.error is not None and failed.error.type == "KeyError"
    async with perdure.Client(url) as client:
        await client.rewind(IID)
        failed_history = await client.get_history(IID)
    assert failed_history[-1].type == "OrchestrationFailed"

    def in_the_rewind_turn(_: list[h.AnyEvent], logged: list[str]) -> bool:
        return any(line.startswith("rewinding ") for line in logged)

    first = await kill_worker_when(url, out, in_the_rewind_turn, log, REWIND_SLOW="1")
    assert first == failed_history  # nothing of the turn was written

    def turn_committed(history: list[h.AnyEvent], _: list[str]) -> bool:
        return rewound(history)

    second = await kill_worker_when(url, out, turn_committed, log)
    async with perdure.Runtime(
        url, **rewind_app.FIXED, lock_timeout=LOCK_TIMEOUT, poll_interval=0.02
    ) as rt:
        state = await rt.client.wait_for_orchestration(IID, timeout=60)
        history = await rt.client.get_history(IID)

    assert state.status == "Completed", state.error
    assert state.output == ["a-ok", "b-ok", "c-ok"]
    for left in (failed_history, first, second):
        assert [event_to_json(e) for e in history[: len(left)]] == [
            event_to_json(e) for e in left
        ]
    [marker] = [e for e in history if isinstance(e, h.ExecutionRewound)]
    assert marker.source_event_id == len(failed_history)
    # Every step answered exactly once in history, b after the rewind.
    scheduled = {
        e.event_id: e.input["name"]
        for e in history
        if isinstance(e, h.ActivityScheduled)
    }
    assert sorted(scheduled.values()) == ["a", "b", "c"]
    answers = [e.source_event_id for e in history if isinstance(e, h.ActivityCompleted)]
    assert sorted(a or 0 for a in answers) == sorted(scheduled)
    b_id = next(i for i, name in scheduled.items() if name == "b")
    b_done = next(
        e
        for e in history
        if isinstance(e, h.ActivityCompleted) and e.source_event_id == b_id
    )
    assert b_done.event_id > marker.event_id
    # a ran once: its result was in history before the failure.
    assert sum(line.startswith("start a ") for line in lines(log)) == 1
