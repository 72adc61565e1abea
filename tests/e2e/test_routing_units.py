"""Activity routing, unit by unit: options, limits, tags, the worker's side."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure import _worker_routing as worker_routing
from perdure._routing import (
    MAX_RATE,
    activity_options,
    check_limits,
    check_tags,
    routing_options,
    split_routing,
)
from perdure._worker_routing import WorkerRouting
from perdure.providers import (
    ActivityLimit,
    ActivityRouting,
    ActivityWork,
    Provider,
    TurnCommit,
)
from perdure.providers.sqlite import SqliteProvider


def test_routing_options_keep_only_what_is_not_default() -> None:
    assert routing_options(None, None, 0) == {}
    assert routing_options("gpu", "s", -3) == {
        "tag": "gpu",
        "session": "s",
        "priority": -3,
    }


@pytest.mark.parametrize(
    ("tag", "session", "priority", "error"),
    [
        ("", None, 0, ValueError),
        (None, "a\x00b", 0, ValueError),
        (None, None, 2**31, ValueError),
        (None, None, 1.5, TypeError),
        (None, None, True, TypeError),
    ],
)
def test_bad_routing_options_are_refused(
    tag: Any, session: Any, priority: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        routing_options(tag, session, priority)


def test_routing_travels_in_the_options_and_is_split_off_the_body() -> None:
    options = activity_options(None, 5.0, None, routing_options("gpu", None, 2))
    assert options == {"retry": None, "timeout": 5.0, "tag": "gpu", "priority": 2}
    rest, fields = split_routing(options)
    assert rest == {"retry": None, "timeout": 5.0}
    assert fields == {"tag": "gpu", "priority": 2}
    assert ActivityWork(
        instance_id="i", execution_id=1, event_id=1, name="a", body="{}", **fields
    ).tag == ("gpu")
    assert split_routing({"tag": "x"}) == (None, {"tag": "x"})
    plain = {"timeout": 1.0}
    assert split_routing(plain)[0] is plain
    assert split_routing(None) == (None, {})


def test_limits_are_checked_where_they_are_declared() -> None:
    assert check_limits("a", None, None) is None
    assert check_limits("a", 3, (10, timedelta(minutes=1))) == ActivityLimit(
        name="a", concurrency=3, rate=10, per=60.0
    )
    for concurrency, rate in [
        (0, None),
        (True, None),
        (2.0, None),
        (None, (0, 1.0)),
        (None, (MAX_RATE + 1, 1.0)),
        (None, (5, 0)),
        (None, (5,)),
        (None, (5.0, 1.0)),
    ]:
        with pytest.raises(ValueError):
            check_limits("a", concurrency, rate)  # type: ignore[arg-type]


def test_the_decorator_declares_limits() -> None:
    @perdure.activity(name="limited", concurrency=5, rate_limit=(100, 60.0))
    async def limited(ctx: perdure.ActivityContext) -> None:
        pass

    @perdure.activity
    async def free(ctx: perdure.ActivityContext) -> None:
        pass

    registry = perdure.Runtime("sqlite://:memory:", activities=[limited, free]).registry
    assert registry.activity_limits() == [
        ActivityLimit(name="limited", concurrency=5, rate=100, per=60.0)
    ]
    with pytest.raises(ValueError, match="concurrency"):
        perdure.activity(concurrency=0)


def test_activity_tags_are_checked() -> None:
    assert check_tags(None) == frozenset()
    assert check_tags(["gpu", "gpu"]) == frozenset({"gpu"})
    with pytest.raises(TypeError, match="set of str"):
        perdure.Runtime("sqlite://:memory:", activity_tags="gpu")
    with pytest.raises(ValueError):
        check_tags([""])


async def _queue(p: Provider, *works: dict[str, Any]) -> None:
    from perdure.providers import Message, NewInstance

    start = Message(kind="start", body=json.dumps({}))
    await p.create_instance(
        NewInstance(instance_id="a", name="wf", version="1", start=start)
    )
    [item] = await p.fetch_orchestrations(1, 30.0)
    activities = [
        ActivityWork(instance_id="a", execution_id=1, event_id=i + 1, body="{}", **w)
        for i, w in enumerate(works)
    ]
    turn = TurnCommit(
        instance_id="a",
        lock_token=item.lock_token,
        execution_id=1,
        history_start=0,
        events=[(1, '"e"')],
        consumed=[m.id for m in item.messages],
        activities=activities,
    )
    assert await p.commit_turns([turn]) == [True]


async def test_work_nobody_takes_is_logged_once_per_name_and_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(worker_routing, "WAITING_AFTER", 0.0)
    p = SqliteProvider(str(tmp_path / "w.db"))
    await p.open()
    try:
        await _queue(
            p, {"name": "gone"}, {"name": "act", "tag": "gpu"}, {"name": "act"}
        )
        routing = ActivityRouting(names=("act",), owner="me")
        worker = WorkerRouting(p, routing, 30.0)
        with caplog.at_level(logging.WARNING, logger="perdure.worker"):
            await worker.check_waiting()
            await worker.check_waiting()  # said once
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2, lines
        assert "'act'" in lines[0] and "tag 'gpu'" in lines[0]
        assert "'gone'" in lines[1] and "did not register" in lines[1]
        [item] = await worker.fetch(10)
        assert (item.name, item.session) == ("act", None)
    finally:
        await p.close()


async def test_the_worker_renews_its_sessions_and_gives_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = SqliteProvider(str(tmp_path / "s.db"))
    await p.open()
    try:
        await _queue(
            p, {"name": "act", "session": "s"}, {"name": "act", "session": "s"}
        )
        mine = WorkerRouting(p, ActivityRouting(names=("act",), owner="A"), 0.3)
        theirs = WorkerRouting(p, ActivityRouting(names=("act",), owner="B"), 30.0)
        [first] = await mine.fetch(1)
        mine.finished(first)
        await mine.renew()  # in use recently: kept
        assert await theirs.fetch(10) == []
        monkeypatch.setattr(worker_routing, "SESSION_IDLE", 0.0)
        await mine.renew()  # idle now: let go (its lease runs out)
        assert mine._sessions == {}
        await mine.close()  # given back at once
        [second] = await theirs.fetch(10)
        assert second.session == "s"
    finally:
        await p.close()
