"""The rewind on the turn path: its message, the plan, the children, the commit."""

from __future__ import annotations

from typing import Any

import pytest

import perdure
from perdure import OrchestrationContext, _messages as m
from perdure._codec import dumps, loads
from perdure._commit import child_answer
from perdure._core import _history as h
from perdure._registry import Registry
from perdure._turn import Finished, Replay, build_driver, plan, read_inbox, run_turn
from perdure.providers._base import (
    InstanceRecord,
    InstanceStatus,
    Message,
    OrchestrationItem,
    QueuedMessage,
)
from perdure.testing import Simulator


def flow(bug: bool) -> Any:
    @perdure.orchestration(name="Flow")
    async def code(ctx: OrchestrationContext, n: int) -> Any:
        a = await ctx.schedule_activity("A", n)
        b = ctx.schedule_activity("B", n, retry=perdure.RetryPolicy(max_attempts=2))
        timer = ctx.schedule_timer(30)
        go = await ctx.schedule_wait("go")
        if bug:
            raise KeyError(go)
        await timer
        return [a, go, await b]

    return code


def _item(
    *messages: Message, history_len: int, status: InstanceStatus = "Running"
) -> OrchestrationItem:
    record = InstanceRecord(
        instance_id="i", name="Flow", version="1.0.0", execution_id=1, status=status
    )
    queued = [
        QueuedMessage(id=i, kind=msg.kind, body=msg.body, occurred_at=float(i))
        for i, msg in enumerate(messages, 1)
    ]
    return OrchestrationItem(
        instance=record,
        messages=queued,
        history_len=history_len,
        lock_token="t",
        attempt=1,
    )


def test_rewind_message_bytes() -> None:
    built = m.Rewind(3).message()
    assert built == m.message(m.REWIND, {"execution_id": 3})
    assert m.decode(QueuedMessage(id=1, kind=built.kind, body=built.body)) == (
        m.Rewind(3)
    )


def test_a_rewind_message_plans_a_rewinding_replay() -> None:
    rewind = m.Rewind(1).message()

    def decide(item: OrchestrationItem, cached: Any = None) -> Any:
        return plan(item, read_inbox(item), cached, max_attempts=3)

    assert decide(_item(rewind, history_len=9)) == Replay(rewind=True)
    # Not with another execution's message: stale, like a late answer.
    stale = m.Rewind(0).message()
    assert decide(_item(stale, history_len=9)) == Replay()
    # A finished instance only consumes it (it was rewound and failed
    # again before the message was read, say).
    assert decide(_item(rewind, history_len=9, status="Failed")) == Finished()


def test_the_rewind_commit_sends_open_work_again() -> None:
    sim = Simulator(flow(bug=True), 4, instance_id="i")
    sim.complete(2, "a")
    sim.now += 10
    sim.raise_event("go", "went")
    assert sim.result.status == "Failed"
    history = sim.history
    registry = Registry([flow(bug=False)])
    item = _item(m.Rewind(1).message(), history_len=len(history))
    start = history[0]
    assert isinstance(start, h.OrchestrationStarted)
    driver = build_driver(registry, "i", 1, start)
    driver.replay(history, rewind=True)
    commit = run_turn(registry, item, read_inbox(item), driver, sim.now + 50).commit
    assert [loads(body)["type"] for _, body in commit.events] == ["ExecutionRewound"]
    assert (commit.status, commit.error, commit.history_start) == (
        "Running",
        None,
        len(history),
    )
    assert commit.consumed == [1]
    [work] = commit.activities
    body = loads(work.body)
    assert (work.name, work.event_id, body["input"]) == ("B", 4, 4)
    assert body["options"]["retry"]["max_attempts"] == 2
    # The original schedule time: same idempotency key, same retry budget.
    assert body["scheduled_at"] == history[3].timestamp
    [timer] = commit.outbound
    fire_at = history[0].timestamp + 30
    assert timer.message == m.TimerFired(1, 5).message(fire_at)


def _record(status: InstanceStatus, **kw: Any) -> InstanceRecord:
    kw.setdefault("parent_instance_id", "p")
    return InstanceRecord(
        instance_id="c", name="Kid", version="1", execution_id=1, status=status, **kw
    )


@pytest.mark.parametrize(
    ("child", "expected"),
    [
        (_record("Running"), None),
        (_record("Suspended"), None),
        (_record("Completed", output=dumps({"k": 1})), m.SubCompleted(2, 6, {"k": 1})),
        (_record("Completed"), m.SubCompleted(2, 6, None)),
        (
            _record("Failed", error=dumps({"type": "E", "message": "x"})),
            m.SubFailed(2, 6, {"type": "E", "message": "x"}),
        ),
        (
            _record("Cancelled", error=dumps({"type": "Cancelled", "message": "r"})),
            m.SubFailed(2, 6, {"type": "Cancelled", "message": "r"}),
        ),
    ],
)
def test_a_child_answers_from_its_record(
    child: InstanceRecord, expected: m.Inbound | None
) -> None:
    assert child_answer("p", 2, 6, "c", child) == expected


@pytest.mark.parametrize(
    "child", [None, _record("Completed", parent_instance_id="someone-else")]
)
def test_a_child_that_is_gone_fails(child: InstanceRecord | None) -> None:
    answer = child_answer("p", 2, 6, "c", child)
    assert isinstance(answer, m.SubFailed)
    assert answer.error["type"] == "InstanceNotFound"
    assert "'c'" in answer.error["message"]
