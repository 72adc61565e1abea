"""Run `crash_app.crash_flow` in worker processes, SIGKILL them, check the result."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import crash_app

import perdure
from perdure import events as h
from perdure._core._history import event_to_json

HERE = Path(__file__).parent
INSTANCE = "crash-1"
LOCK_TIMEOUT = 1.0


@dataclass
class Kill:
    """A worker killed once its instance's history had reached some length."""

    history: list[h.AnyEvent]  # read after the worker died: exactly what survived
    marker: int  # index of the "KILL" line in the step log


class CrashRun:
    """One instance of ``CrashFlow`` on a fresh SQLite file."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'crash.db'}"
        self.log = tmp_path / "steps.log"
        self.worker_out = tmp_path / "worker.out"
        self.kills: list[Kill] = []

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    async def start(self) -> None:
        async with perdure.Client(self.url) as client:
            await client.start_orchestration(INSTANCE, "CrashFlow", str(self.log))

    async def kill_worker_at(self, events: int) -> Kill:
        """Run a worker process; SIGKILL it once history has *events* events."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
        with self.worker_out.open("a") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "perdure", "worker", "crash_app",
                "--db", self.url, "--lock-timeout", str(LOCK_TIMEOUT),
                "--poll-interval", "0.02",
                env=env, stdout=out, stderr=out,
            )  # fmt: skip
        async with perdure.Client(self.url) as client:
            try:
                deadline = time.monotonic() + 60
                while len(await client.get_history(INSTANCE)) < events:
                    assert proc.returncode is None, self.worker_out.read_text()
                    assert time.monotonic() < deadline, self.worker_out.read_text()
                    await asyncio.sleep(0.005)
            finally:
                proc.kill()
                await proc.wait()
            history = await client.get_history(INSTANCE)
        with self.log.open("a") as log:
            log.write(f"KILL {len(self.kills)}\n")
        kill = Kill(history, len(self.lines()) - 1)
        self.kills.append(kill)
        return kill

    async def finish(self) -> tuple[perdure.OrchestrationState, list[h.AnyEvent]]:
        """Resume in this process with a new Runtime and wait for the end."""
        async with perdure.Runtime(
            self.url,
            orchestrations=crash_app.ORCHESTRATIONS,
            activities=crash_app.ACTIVITIES,
            lock_timeout=LOCK_TIMEOUT,
            poll_interval=0.02,
            cancellation_grace_period=0.5,
        ) as runtime:
            state = await runtime.client.wait_for_orchestration(INSTANCE, timeout=60)
            history = await runtime.client.get_history(INSTANCE)
        return state, history

    def check(
        self, state: perdure.OrchestrationState, history: list[h.AnyEvent]
    ) -> None:
        """Assert exactly-once orchestration progress and at-least-once steps."""
        assert state.status == "Completed", state.error
        assert state.output == crash_app.EXPECTED_OUTPUT
        assert [e.event_id for e in history] == list(range(1, len(history) + 1))
        types = [e.type for e in history]
        assert types.count("OrchestrationCompleted") == 1
        assert types[-1] == "OrchestrationCompleted"
        assert (types.count("TimerCreated"), types.count("TimerFired")) == (1, 1)
        names = step_names(history)
        assert list(names.values()) == crash_app.SCHEDULED  # no duplicates
        for event_id, name in names.items():
            answers = [e.type for e in history if e.source_event_id == event_id]
            if name == "slow":  # lost the race: cancelled, never completed
                assert answers == ["ActivityCancelRequested"], answers
            else:
                assert answers == ["ActivityCompleted"], (name, answers)
        lines = self.lines()
        for name in crash_app.SCHEDULED[:-1]:
            if name != "slow":
                assert any(line.startswith(f"done {name} ") for line in lines), name
        for kill in self.kills:
            self._check_kill(kill, history, lines)

    def _check_kill(
        self, kill: Kill, history: list[h.AnyEvent], lines: list[str]
    ) -> None:
        # Nothing that survived the kill was lost or rewritten.
        assert [event_to_json(e) for e in history[: len(kill.history)]] == [
            event_to_json(e) for e in kill.history
        ]
        names = step_names(kill.history)
        settled = {
            e.source_event_id
            for e in kill.history
            if isinstance(e, h.ActivityCompleted | h.ActivityFailed)
        }
        cancelled = {
            e.source_event_id
            for e in kill.history
            if isinstance(e, h.ActivityCancelRequested)
        }
        done = {names[i] for i in settled if i in names}
        before, after = lines[: kill.marker], lines[kill.marker + 1 :]
        rerun = {line.split()[1] for line in after if line.startswith("start ")}
        # Steps whose completion was in history are never executed again.
        assert not done & rerun, (done & rerun, lines)
        # Steps in flight ran again, unless their result was already acked
        # (or they were cancelled before anyone picked them up again).
        cancelled |= {
            e.source_event_id
            for e in history
            if isinstance(e, h.ActivityCancelRequested)
        }
        for event_id, name in names.items():
            if event_id in settled or event_id in cancelled:
                continue
            finished = any(line.startswith(f"done {name} ") for line in before)
            assert name in rerun or finished, (name, lines)


def step_names(history: list[h.AnyEvent]) -> dict[int, str]:
    """event_id -> step name of every ActivityScheduled."""
    return {
        e.event_id: e.input["name"]
        for e in history
        if isinstance(e, h.ActivityScheduled)
    }
