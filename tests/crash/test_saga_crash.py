"""SIGKILL the worker at every turn boundary of a cancelled block's compensation.

`saga_crash_app.saga_crash` times out while Ship runs and undoes the three
steps inside ``ctx.shield()``. History of an undisturbed run; each turn
commits the events up to a ``|`` at once::

     1 OrchestrationStarted               9 ActivityScheduled Recall  shielded
     2 ActivityScheduled Reserve         10 ActivityCancelRequested Ship |
     3 TimerCreated (the deadline) |     11 ActivityCompleted Recall
     4 ActivityCompleted Reserve         12 ActivityScheduled Refund  shielded |
     5 ActivityScheduled Charge |        13 ActivityCompleted Refund
     6 ActivityCompleted Charge          14 ActivityScheduled Release shielded |
     7 ActivityScheduled Ship |          15 ActivityCompleted Release
     8 TimerFired                        16 OrchestrationCompleted |

A worker subprocess is killed once the history reaches a boundary (or once
an undo activity has finished but its completion may not be in history
yet); a runtime in this process finishes the instance. The outcome, the
history (modulo wall-clock fields) and the steps that ran must be those of a
crash-free run, every undo having run at least once, in reverse order.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import saga_crash_app as app

import perdure
from perdure import events as h
from perdure._core._history import event_to_json

HERE = Path(__file__).parent
INSTANCE = "saga-1"
LOCK_TIMEOUT = 1.0
OPTIONS: dict[str, Any] = {
    "lock_timeout": LOCK_TIMEOUT,
    "poll_interval": 0.02,
    "cancellation_grace_period": 0.5,
}

#: Kill once ``ready(history, step log lines)``.
Ready = Callable[[list[h.AnyEvent], list[str]], bool]


def events(n: int) -> Ready:
    return lambda history, _: len(history) >= n


def finished(name: str) -> Ready:
    return lambda _, lines: any(line.startswith(f"done {name} ") for line in lines)


def comparable(history: list[h.AnyEvent]) -> list[dict[str, Any]]:
    """The events without their wall-clock fields (``occurred_at``: a late timer)."""
    out = []
    for event in history:
        fields = json.loads(event_to_json(event))
        for wall_clock in ("timestamp", "fire_at", "occurred_at"):
            fields.pop(wall_clock, None)
        out.append(fields)
    return out


class SagaRun:
    """One SagaCrash instance on a fresh SQLite file, killed and resumed."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'saga.db'}"
        self.log = tmp_path / "steps.log"
        self.worker_out = tmp_path / "worker.out"
        self.kills: list[tuple[list[h.AnyEvent], int]] = []  # history, log marker

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    async def start(self) -> None:
        async with perdure.Client(self.url) as client:
            await client.start_orchestration(INSTANCE, "SagaCrash", None)

    async def kill_worker_when(self, ready: Ready) -> list[h.AnyEvent]:
        """Run a worker process; SIGKILL it once *ready*; return the history."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
            app.LOG_ENV: str(self.log),
        }
        with self.worker_out.open("a") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "perdure", "worker", "saga_crash_app",
                "--db", self.url, "--lock-timeout", str(LOCK_TIMEOUT),
                "--poll-interval", "0.02",
                env=env, stdout=out, stderr=out,
            )  # fmt: skip
        async with perdure.Client(self.url) as client:
            try:
                deadline = time.monotonic() + 30
                while not ready(await client.get_history(INSTANCE), self.lines()):
                    assert proc.returncode is None, self.worker_out.read_text()
                    assert time.monotonic() < deadline, self.worker_out.read_text()
                    await asyncio.sleep(0.005)
            finally:
                proc.kill()
                await proc.wait()
            history = await client.get_history(INSTANCE)
        with self.log.open("a") as log:
            log.write(f"KILL {len(self.kills)}\n")
        self.kills.append((history, len(self.lines()) - 1))
        return history

    async def finish(self) -> tuple[perdure.OrchestrationState, list[h.AnyEvent]]:
        """Resume in this process with a new Runtime and wait for the end."""
        async with perdure.Runtime(
            self.url,
            orchestrations=app.ORCHESTRATIONS,
            activities=app.ACTIVITIES,
            **OPTIONS,
        ) as runtime:
            state = await runtime.client.wait_for_orchestration(INSTANCE, timeout=30)
            history = await runtime.client.get_history(INSTANCE)
        return state, history

    def check(
        self,
        state: perdure.OrchestrationState,
        history: list[h.AnyEvent],
        reference: list[dict[str, Any]],
    ) -> None:
        assert (state.status, state.output) == ("Completed", app.EXPECTED_OUTPUT)
        assert comparable(history) == reference
        lines = self.lines()
        # Every undo ran (at least once) and finished, in reverse step order:
        # each one first started after the previous one had finished.
        for name in app.UNDO:
            assert any(line.startswith(f"done {name} ") for line in lines), lines
        for before, after in zip(app.UNDO, app.UNDO[1:], strict=False):
            first_start = next(
                i for i, line in enumerate(lines) if line.startswith(f"start {after} ")
            )
            first_done = next(
                i for i, line in enumerate(lines) if line.startswith(f"done {before} ")
            )
            assert first_done < first_start, lines
        assert not any(line.startswith("done Ship ") for line in lines), lines
        names = {
            e.event_id: e.input for e in history if isinstance(e, h.ActivityScheduled)
        }
        for kill_history, marker in self.kills:
            # Nothing that survived the kill was lost or rewritten.
            assert comparable(history[: len(kill_history)]) == comparable(kill_history)
            assert history[: len(kill_history)] == kill_history
            # A step whose completion was in history never ran again.
            done = {
                names[e.source_event_id]
                for e in kill_history
                if isinstance(e, h.ActivityCompleted) and e.source_event_id in names
            }
            rerun = {
                line.split()[1]
                for line in lines[marker + 1 :]
                if line.startswith("start ")
            }
            assert not done & rerun, (done & rerun, lines)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The history of a crash-free run, without wall-clock fields."""
    tmp = tmp_path_factory.mktemp("reference")
    run = SagaRun(tmp)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(app.LOG_ENV, str(run.log))

        async def crash_free() -> list[h.AnyEvent]:
            await run.start()
            state, history = await run.finish()
            assert (state.status, state.output) == ("Completed", app.EXPECTED_OUTPUT)
            return history

        history = asyncio.run(crash_free())
    types = [e.type for e in history]
    assert len(types) == 16 and types[-1] == "OrchestrationCompleted", types
    shielded = [
        (e.input, e.shielded) for e in history if isinstance(e, h.ActivityScheduled)
    ]
    assert shielded == [(name, name in app.UNDO) for name in app.SCHEDULED]
    return comparable(history)


@pytest.fixture
def saga_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SagaRun]:
    run = SagaRun(tmp_path)
    monkeypatch.setenv(app.LOG_ENV, str(run.log))  # for the in-process runtime
    yield run


# Each case costs a worker start plus one lease expiry (~2.5 s): one runs in
# the quick suite, the rest are marked slow.
@pytest.mark.parametrize(
    "ready",
    [
        pytest.param(events(10), id="recall-scheduled"),
        pytest.param(events(7), id="ship-running", marks=pytest.mark.slow),
        pytest.param(finished("Recall"), id="recall-done", marks=pytest.mark.slow),
        pytest.param(events(12), id="refund-scheduled", marks=pytest.mark.slow),
        pytest.param(finished("Refund"), id="refund-done", marks=pytest.mark.slow),
        pytest.param(events(14), id="release-scheduled", marks=pytest.mark.slow),
        pytest.param(events(16), id="ended", marks=pytest.mark.slow),
    ],
)
async def test_kill_during_compensation_then_resume(
    saga_run: SagaRun, reference: list[dict[str, Any]], ready: Ready
) -> None:
    await saga_run.start()
    await saga_run.kill_worker_when(ready)
    state, history = await saga_run.finish()
    saga_run.check(state, history, reference)


@pytest.mark.slow
async def test_killed_at_each_boundary_by_successive_workers(
    saga_run: SagaRun, reference: list[dict[str, Any]]
) -> None:
    await saga_run.start()
    for n in (10, 12, 14):
        await saga_run.kill_worker_when(events(n))
    state, history = await saga_run.finish()
    saga_run.check(state, history, reference)
    assert len(saga_run.kills) == 3
