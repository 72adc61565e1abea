"""The basic examples run, print their outcome, and leave the expected history.

The ``durable_async`` examples are covered in test_durable_async_examples.py.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from _examples_support import (
    EXAMPLES,
    cancelled_labels,
    completed,
    histories,
    load,
    names,
    scheduled,
)

from perdure import events as h

ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.py"))


def test_every_example_is_listed_in_the_readme() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    assert len(ALL_EXAMPLES) >= 11
    for name in ALL_EXAMPLES:
        assert f"{name}.py" in readme, name


@pytest.fixture(scope="module")
def script_runs() -> dict[str, subprocess.CompletedProcess[str]]:
    """Run every example script once, all at the same time (keeps this quick)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ALL_EXAMPLES
    }
    runs = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        runs[name] = subprocess.CompletedProcess(
            proc.args, proc.returncode, stdout, stderr
        )
    return runs


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_example_script_runs(
    name: str, script_runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    proc = script_runs[name]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "the example printed nothing"
    assert not _crashes(proc.stderr), proc.stderr


def _crashes(stderr: str) -> list[int]:
    """Lines of tracebacks that are not part of a logged failure.

    The runtime logs each failed activity attempt and each failed
    orchestration with its traceback (DESIGN §9); examples that fail on
    purpose print those. Any other traceback is a crash.
    """
    lines = stderr.splitlines()
    return [
        i
        for i, line in enumerate(lines)
        if line.startswith("Traceback")
        and not (i > 0 and _logged(lines[i - 1]))
        and not (i > 1 and lines[i - 2].startswith(_CHAINED))
    ]


# How a traceback goes on with the exception it was raised from.
_CHAINED = ("The above exception was", "During handling of the above")


def _logged(line: str) -> bool:
    """Whether *line* is the runtime's log line of a failure."""
    activity = line.startswith("activity '") and "failed" in line
    return activity or (line.startswith("instance ") and " failed: " in line)


async def test_hello_world(sqlite_url: str) -> None:
    example = load("hello_world")
    output = await example.run(sqlite_url)
    assert output == ["Hello, Tokyo!", "Hello, Seattle!", "Hello, London!"]
    history = (await histories(sqlite_url, example.INSTANCE))[example.INSTANCE]
    calls = scheduled(history, "say_hello")
    assert [e.input for e in calls] == ["Tokyo", "Seattle", "London"]
    # Sequential: each call is scheduled only after the previous completed.
    for before, after in itertools.pairwise(calls):
        completion = next(e for e in history if e.source_event_id == before.event_id)
        assert completion.event_id < after.event_id


async def test_fan_out_fan_in(sqlite_url: str) -> None:
    example = load("fan_out_fan_in")
    assert await example.run(sqlite_url) == "5 documents, 22 words"
    history = (await histories(sqlite_url, example.INSTANCE))[example.INSTANCE]
    counts = scheduled(history, "CountWords")
    assert [e.input for e in counts] == example.DOCUMENTS
    # Fan-out: all five are scheduled in the first turn, before any result.
    first_result = next(e for e in history if e.type == "ActivityCompleted")
    assert all(e.event_id < first_result.event_id for e in counts)
    assert [completed(history, e) for e in counts] == [4, 5, 4, 4, 5]
    publish = scheduled(history, "Publish")
    assert [e.input for e in publish] == [{"documents": 5, "words": 22}]
    assert cancelled_labels(history) == []


async def test_human_approval_both_paths(sqlite_url: str) -> None:
    example = load("human_approval")
    outputs = await example.run(sqlite_url)
    assert outputs == {
        "approved": "exp-1 approved by alice",
        "timed_out": "escalated exp-2 to the manager",
    }
    runs = await histories(sqlite_url, example.APPROVED, example.TIMED_OUT)
    approved, timed_out = runs[example.APPROVED], runs[example.TIMED_OUT]
    # The event won: the one-hour timer is cancelled, nobody is escalated.
    assert cancelled_labels(approved) == ["timer"]
    assert names(approved) == ["RequestApproval"]
    # The timer won: the wait is withdrawn and the request escalated.
    assert cancelled_labels(timed_out) == ["approval"]
    assert any(e.type == "TimerFired" for e in timed_out)
    assert names(timed_out) == ["RequestApproval", "Escalate"]
    assert not any(e.type == "EventRaised" for e in timed_out)


async def test_sub_orchestration_failure_handling(sqlite_url: str) -> None:
    example = load("sub_orchestration")
    report = await example.run(sqlite_url)
    assert report == {
        "shipped": {"o1": "tracking-o1", "o3": "tracking-o3"},
        "failed": {"o2": "card declined"},
    }
    parent = example.INSTANCE
    children = [f"{parent}:{o['id']}" for o in example.ORDERS]
    runs = await histories(sqlite_url, parent, *children)
    subs = [e for e in runs[parent] if isinstance(e, h.SubOrchestrationScheduled)]
    assert [e.instance_id for e in subs] == children
    assert sorted(e.type for e in runs[parent] if e.source_event_id) == [
        "SubOrchestrationCompleted",
        "SubOrchestrationCompleted",
        "SubOrchestrationFailed",
    ]
    # The failed child compensated before failing; the others shipped.
    failed_child = runs[f"{parent}:o2"]
    assert names(failed_child) == ["ReserveStock", "ChargeCard", "ReleaseStock"]
    assert isinstance(failed_child[-1], h.OrchestrationFailed)
    assert "card declined" in failed_child[-1].error["message"]
    for child in (f"{parent}:o1", f"{parent}:o3"):
        assert names(runs[child]) == ["ReserveStock", "ChargeCard", "Ship"]
