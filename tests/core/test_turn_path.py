"""The turn path: typed messages, the one plan decision, the pure commit."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from perdure import OrchestrationContext, _messages as m
from perdure._codec import loads
from perdure._core import _history as h
from perdure._registry import Registry
from perdure._turn import (
    Cached,
    Finished,
    Fresh,
    Poison,
    Replay,
    Stray,
    plan,
    read_inbox,
    run_turn,
)
from perdure.providers._base import (
    InstanceRecord,
    InstanceStatus,
    Message,
    OrchestrationItem,
    QueuedMessage,
)

LINK = {"instance_id": "p", "execution_id": 2, "event_id": 5}
ERROR = {"type": "Error", "message": "boom", "category": "application"}


async def charge(ctx: OrchestrationContext, amount: int) -> Any:
    return await ctx.schedule_activity("Charge", amount)


def _item(
    *messages: Message,
    execution_id: int = 1,
    history_len: int = 0,
    status: InstanceStatus = "Running",
    attempt: int = 1,
) -> OrchestrationItem:
    queued = [
        QueuedMessage(id=i, kind=msg.kind, body=msg.body)
        for i, msg in enumerate(messages, 1)
    ]
    record = InstanceRecord(
        instance_id="i",
        name="charge",
        version="",
        execution_id=execution_id,
        status=status,
    )
    return OrchestrationItem(
        instance=record,
        messages=queued,
        history_len=history_len,
        lock_token="t",
        attempt=attempt,
    )


@pytest.mark.parametrize(
    ("typed", "kind", "body"),
    [
        (
            m.Start("o", None, 3),
            m.START,
            {"name": "o", "version": None, "input": 3, "execution_id": 1},
        ),
        (
            m.Start("o", "2", None, 1, LINK),
            m.START,
            {
                "name": "o",
                "version": "2",
                "input": None,
                "execution_id": 1,
                "parent": LINK,
            },
        ),
        (
            m.ContinueAsNew("o", None, [1], 3, (("e", 1),), None),
            m.CONTINUE_AS_NEW,
            {
                "name": "o",
                "version": None,
                "input": [1],
                "execution_id": 3,
                "carried": [["e", 1]],
                "parent": None,
            },
        ),
        (
            m.ActivityCompleted(1, 2, "r"),
            m.ACTIVITY_COMPLETED,
            {"execution_id": 1, "event_id": 2, "result": "r"},
        ),
        (
            m.ActivityFailed(1, 2, ERROR),
            m.ACTIVITY_FAILED,
            {"execution_id": 1, "event_id": 2, "error": ERROR},
        ),
        (
            m.SubCompleted(1, 2, None),
            m.SUB_COMPLETED,
            {"execution_id": 1, "event_id": 2, "result": None},
        ),
        (
            m.SubFailed(1, 2, ERROR),
            m.SUB_FAILED,
            {"execution_id": 1, "event_id": 2, "error": ERROR},
        ),
        (
            m.EventRaised("go", {"a": 1}),
            m.EVENT_RAISED,
            {"name": "go", "data": {"a": 1}},
        ),
        (m.Cancel("why"), m.CANCEL, {"reason": "why"}),
    ],
)
def test_typed_message_bytes_match_the_dict_builder(
    typed: m.Inbound, kind: str, body: dict[str, Any]
) -> None:
    assert not isinstance(typed, m.TimerFired)  # its message() takes fire_at
    built = typed.message()
    # Queued bodies written by older versions must keep decoding, and new
    # ones must be the same bytes as before.
    assert built == m.message(kind, body)
    assert m.decode(QueuedMessage(id=1, kind=built.kind, body=built.body)) == typed


def test_timer_message_is_delayed_and_keyed() -> None:
    built = m.TimerFired(2, 7).message(fire_at=100.0)
    assert (built.kind, built.visible_at, built.key) == (
        m.TIMER_FIRED,
        100.0,
        "timer:2:7",
    )
    assert loads(built.body) == {"execution_id": 2, "event_id": 7}


def test_unknown_kind_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    odd = QueuedMessage(id=9, kind="from_the_future", body="{}")
    item = dataclasses.replace(_item(), messages=[odd])
    with caplog.at_level(logging.WARNING, "perdure.dispatcher"):
        assert read_inbox(item) == []
    assert "from_the_future" in caplog.text


def test_plan_is_the_one_decision() -> None:
    start = m.Start("charge", input=1)
    following = m.ContinueAsNew("charge", None, 2, 2)
    registry = Registry([charge])
    first = _item(start.message())
    live = run_turn(registry, first, read_inbox(first), Fresh(start), 0.0).driver
    assert live is not None  # execution 1, history length 2

    def decide(item: OrchestrationItem, cached: Any = None) -> Any:
        return plan(item, read_inbox(item), cached, max_attempts=3)

    assert decide(_item(start.message(), status="Completed")) == Finished()
    assert decide(_item(start.message(), attempt=4)) == Poison()
    assert decide(_item(start.message())) == Fresh(start)
    assert decide(_item(following.message(), history_len=3, execution_id=1)) == Fresh(
        following
    )
    # A start of an execution already begun is stale: the driver runs on.
    assert decide(_item(start.message(), history_len=2), live) == Cached(live)
    assert decide(_item(start.message(), history_len=2)) == Replay()
    # A cached driver behind the stored history (another process ran a turn).
    assert decide(_item(history_len=3), live) == Replay()
    assert decide(_item(m.EventRaised("go").message())) == Stray()


def test_commit_is_built_from_the_turn_result() -> None:
    start = m.Start("charge", input=5, parent=LINK)
    item = _item(start.message())
    output = run_turn(Registry([charge]), item, read_inbox(item), Fresh(start), 10.0)
    commit = output.commit
    assert [loads(body)["type"] for _, body in commit.events] == [
        "OrchestrationStarted",
        "ActivityScheduled",
    ]
    assert (commit.name, commit.status, commit.history_start) == (
        "charge",
        "Running",
        0,
    )
    assert [(w.name, loads(w.body)["input"]) for w in commit.activities] == [
        ("Charge", 5)
    ]
    assert commit.consumed == [1]

    done = _item(m.ActivityCompleted(1, 2, "ok").message(), history_len=2)
    assert output.driver is not None
    finished = run_turn(
        Registry([charge]), done, read_inbox(done), output.driver, 11.0
    ).commit
    assert (finished.status, finished.output, finished.history_start) == (
        "Completed",
        '"ok"',
        2,
    )
    # The parent link comes from the start, read before the turn ran.
    [answer] = finished.outbound
    assert answer.instance_id == "p"
    assert answer.message == m.SubCompleted(2, 5, "ok").message()
    assert h.event_from_json(finished.events[-1][1]).type == "OrchestrationCompleted"


def test_to_commit_skips_exactly_the_events_it_has_no_case_for() -> None:
    # to_commit passes over events outside _WRITTEN before its `match`: a
    # case added for a new event class must be added there too, or that
    # event would silently write nothing.
    import ast
    import inspect

    from perdure import _commit

    tree = ast.parse(inspect.getsource(_commit.to_commit))
    cased = {
        node.cls.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.MatchClass) and isinstance(node.cls, ast.Attribute)
    }
    assert cased == {cls.__name__ for cls in _commit._WRITTEN}
    assert all(getattr(h, name) in _commit._WRITTEN for name in cased)
