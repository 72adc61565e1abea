"""One unwritable member of a batch never reaches the others (probe F1, F2).

"Unwritable" means the database driver refuses a value: a str with a lone
surrogate (both backends), a NUL character (PostgreSQL text only). Such a
turn is rejected alone, with its lock released so the instance is fetched
again at once; such an activity result is replaced by an ``activity_failed``
message. Every other member of the batch is written as if it came alone.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from perdure import _messages as m
from perdure.providers import (
    ActivityResult,
    ActivityWork,
    Message,
    NewInstance,
    OrchestrationItem,
    Outbound,
    Provider,
    TurnCommit,
)
from perdure.providers.conformance._fixtures import Kit, Run

SURROGATE = "caf\udce9"  # os.fsdecode() of a Latin-1 file name
NUL = "Step\x00"

# Each test stores a value the storage refuses, which providers log.
pytestmark = pytest.mark.storage_warnings


def _work(instance_id: str, event_id: int, name: str = "act") -> ActivityWork:
    return ActivityWork(
        instance_id=instance_id, execution_id=1, event_id=event_id, name=name, body="{}"
    )


def _bad_turn(kit: type[Kit], item: OrchestrationItem, where: str) -> TurnCommit:
    """A turn for *item* carrying one value a driver may refuse."""
    iid = item.instance.instance_id
    if where == "output":
        text = json.dumps(SURROGATE, ensure_ascii=False)
        return kit.turn(item, "done", status="Completed", output=text)
    if where == "event":
        return kit.turn(item, events=[(1, json.dumps(SURROGATE, ensure_ascii=False))])
    if where == "activity-name":
        return kit.turn(item, "started", activities=[_work(iid, 1, NUL)])
    if where == "message-key":
        out = Outbound(instance_id=iid, message=Message(kind="e", body="1", key=NUL))
        return kit.turn(item, "started", outbound=[out])
    if where == "child-id":
        start = Message(kind="start", body="null")
        child = NewInstance(instance_id=f"c{NUL}", name="wf", version="", start=start)
        return kit.turn(item, "started", new_instances=[child])
    raise AssertionError(where)


@pytest.mark.parametrize(
    "where", ["output", "event", "activity-name", "message-key", "child-id"]
)
def test_unwritable_turn_is_rejected_alone(
    run: Run, kit: type[Kit], where: str
) -> None:
    async def body(p: Provider) -> None:
        for iid in ("a", "bad", "c"):
            await p.create_instance(kit.new(iid))
        items = await kit.fetch_map(p)
        turns = [
            kit.turn(items["a"], "a1", status="Completed", output='"A"'),
            _bad_turn(kit, items["bad"], where),
            kit.turn(items["c"], "c1", activities=[_work("c", 1)]),
        ]
        ok = await p.commit_turns(turns)
        assert ok[0] and ok[2], ok
        a = await p.get_instance("a")
        assert a is not None and (a.status, a.output) == ("Completed", '"A"')
        assert await p.read_history("c") == ['"c1"']
        queued = [w.instance_id for w in await p.fetch_activities(10, kit.lease)]
        assert queued == (["c", "bad"] if ok[1] else ["c"]) or ok[1]
        if ok[1]:
            return  # this backend can store the value (NUL on SQLite)
        # Nothing of the rejected turn is written; its lock is released at
        # once, so the dispatcher sees it again (attempt 2) without waiting
        # for the lease, and max_attempts turns it into poison.
        assert await p.read_history("bad") == []
        bad = await p.get_instance("bad")
        assert bad is not None and bad.status == "Running"
        again = await kit.fetch_map(p)
        assert list(again) == ["bad"]
        assert again["bad"].attempt == 2
        assert len(again["bad"].messages) == 1

    run(body)


def test_every_turn_unwritable_rejects_each(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        for iid in ("x", "y"):
            await p.create_instance(kit.new(iid))
        items = await kit.fetch_map(p)
        turns = [_bad_turn(kit, items[i], "event") for i in ("x", "y")]
        assert await p.commit_turns(turns) == [False, False]
        assert sorted(await kit.fetch_map(p)) == ["x", "y"]

    run(body)


async def _running_activities(p: Provider, kit: Any, n: int) -> list[Any]:
    await p.create_instance(kit.new("a"))
    item = await kit.fetch_one(p, "a")
    works = [_work("a", i + 1) for i in range(n)]
    assert await p.commit_turns([kit.turn(item, "started", activities=works)]) == [True]
    fetched = await p.fetch_activities(10, 30.0)
    assert len(fetched) == n
    return sorted(fetched, key=lambda w: w.event_id)


def _ack(work: Any, kind: str, body: dict[str, Any]) -> ActivityResult:
    body = {"execution_id": work.execution_id, "event_id": work.event_id, **body}
    text = json.dumps(body, ensure_ascii=False)
    return ActivityResult(
        id=work.id,
        lock_token=work.lock_token,
        instance_id=work.instance_id,
        message=Message(kind=kind, body=text),
    )


def test_unwritable_activity_result_becomes_a_failure_alone(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        works = await _running_activities(p, kit, 4)
        error = {"type": "OSError", "message": f"no {SURROGATE}", "category": "x"}
        acks = [
            _ack(works[0], m.ACTIVITY_COMPLETED, {"result": 1}),
            _ack(works[1], m.ACTIVITY_COMPLETED, {"result": [SURROGATE]}),
            _ack(works[2], m.ACTIVITY_FAILED, {"error": error}),
            _ack(works[3], m.ACTIVITY_COMPLETED, {"result": 4}),
        ]
        await p.complete_activities(acks)  # must not raise
        assert await p.fetch_activities(10, kit.lease) == []  # all four acked
        item = await kit.fetch_one(p, "a")
        got = {json.loads(q.body)["event_id"]: q for q in item.messages}
        assert sorted(got) == [1, 2, 3, 4]
        assert got[1].kind == m.ACTIVITY_COMPLETED
        assert json.loads(got[1].body)["result"] == 1
        assert json.loads(got[4].body)["result"] == 4
        # The result that cannot be stored fails the activity, clearly.
        assert got[2].kind == m.ACTIVITY_FAILED
        failure = json.loads(got[2].body)
        assert failure["execution_id"] == 1
        assert failure["error"]["type"] == "PayloadError"
        assert "cannot be stored" in failure["error"]["message"]
        # A failure whose text cannot be stored keeps its type, escaped.
        assert got[3].kind == m.ACTIVITY_FAILED
        kept = json.loads(got[3].body)["error"]
        assert kept["type"] == "OSError"
        assert kept["message"] == "no caf\\udce9"

    run(body)


def test_stale_and_unwritable_results_in_one_call(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        works = await _running_activities(p, kit, 2)
        stale = ActivityResult(
            id=works[0].id,
            lock_token="not-the-token",
            instance_id="a",
            message=Message(
                kind=m.ACTIVITY_COMPLETED,
                body=json.dumps(SURROGATE, ensure_ascii=False),
            ),
        )
        good = _ack(works[1], m.ACTIVITY_COMPLETED, {"result": 2})
        await p.complete_activities([stale, good])
        item = await kit.fetch_one(p, "a")
        assert [json.loads(q.body)["event_id"] for q in item.messages] == [2]

    run(body)
