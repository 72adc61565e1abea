"""SIGKILL a worker process at many points; the instance must finish exactly once.

History of an undisturbed run (kill points refer to these event counts)::

     1 OrchestrationStarted          10 ActivityScheduled slow  (scope 0)
     2 ActivityScheduled s1          11 ActivityScheduled b1    (scope 0.1)
     3 ActivityCompleted s1          12 ActivityCompleted b1
     4 ActivityScheduled s2          13 ActivityScheduled b2    (scope 0.1)
     5 ActivityCompleted s2          14 ActivityCompleted b2   -> block wins
     6 TimerCreated                  15 ActivityScheduled s4
     7 TimerFired                    16 ActivityCancelRequested slow
     8 ActivityScheduled s3          17 ActivityCompleted s4
     9 ActivityCompleted s3          18 OrchestrationCompleted
"""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_harness import CrashRun


# Each case costs a worker start plus one lease expiry (~2 s): one case runs
# in the quick suite, the rest are marked slow.
@pytest.mark.parametrize(
    "events",
    [
        pytest.param(12, id="block-step1-done"),
        pytest.param(2, id="s1-in-flight", marks=pytest.mark.slow),
        pytest.param(6, id="timer-pending", marks=pytest.mark.slow),
        pytest.param(11, id="race-started", marks=pytest.mark.slow),
        pytest.param(16, id="race-decided", marks=pytest.mark.slow),
    ],
)
async def test_kill_then_resume_in_process(tmp_path: Path, events: int) -> None:
    run = CrashRun(tmp_path)
    await run.start()
    kill = await run.kill_worker_at(events)
    assert len(kill.history) >= events
    state, history = await run.finish()
    run.check(state, history)


@pytest.mark.slow
async def test_killed_again_and_again_by_successive_workers(tmp_path: Path) -> None:
    run = CrashRun(tmp_path)
    await run.start()
    for events in (4, 9, 13, 17):
        await run.kill_worker_at(events)
    state, history = await run.finish()
    run.check(state, history)
    assert len(run.kills) == 4
