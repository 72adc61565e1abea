"""Conformance: the instance's values (`TurnCommit.state_values`, `read_values`)."""

from __future__ import annotations

import json

from perdure.providers import Outbound, Provider
from perdure.providers.conformance._fixtures import Kit, Run

__all__ = [
    "test_read_values_of_unknown_instance_is_none",
    "test_rejected_turn_writes_no_values",
    "test_values_are_written_with_their_turn",
    "test_values_in_one_batch_stay_with_their_turn",
    "test_values_move_with_the_instance_and_go_with_it",
]


async def _values(p: Provider, instance_id: str) -> object:
    text = await p.read_values(instance_id)
    return None if text is None else json.loads(text)


def test_read_values_of_unknown_instance_is_none(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        assert await p.read_values("nope") is None
        # A new instance has none yet: an empty object, not None.
        await p.create_instance(kit.new("a"))
        assert await _values(p, "a") == {}

    run(body)


def test_values_are_written_with_their_turn(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        first = kit.turn(item, "e1", state_values='{"step":"charge","n":1}')
        assert await p.commit_turns([first]) == [True]
        assert await _values(p, "a") == {"step": "charge", "n": 1}
        # None leaves them alone, as for custom_status.
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        assert await p.commit_turns([kit.turn(item, "e2")]) == [True]
        assert await _values(p, "a") == {"step": "charge", "n": 1}
        # A new object replaces them whole; "{}" empties them.
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        second = kit.turn(item, "e3", state_values='{"n":2}')
        assert await p.commit_turns([second]) == [True]
        assert await _values(p, "a") == {"n": 2}
        await p.enqueue("a", kit.message())
        item = await kit.fetch_one(p, "a")
        last = kit.turn(item, "e4", state_values="{}", status="Completed", output="1")
        assert await p.commit_turns([last]) == [True]
        assert await _values(p, "a") == {}

    run(body)


def test_rejected_turn_writes_no_values(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        stale = kit.turn(item, "e1", lock_token="stale", state_values='{"x":1}')
        assert await p.commit_turns([stale]) == [False]
        assert await _values(p, "a") == {}
        moved_on = kit.turn(item, "e1", history_start=5, state_values='{"x":1}')
        assert await p.commit_turns([moved_on]) == [False]
        assert await _values(p, "a") == {}
        assert await p.commit_turns([kit.turn(item, "e1")]) == [True]
        assert await _values(p, "a") == {}

    run(body)


def test_values_in_one_batch_stay_with_their_turn(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        for iid in ("a", "b", "c"):
            await p.create_instance(kit.new(iid))
        items = await kit.fetch_map(p)
        turns = [
            kit.turn(items["a"], "e1", state_values='{"who":"a"}'),
            kit.turn(items["b"], "e1", lock_token="stale", state_values='{"who":"b"}'),
            kit.turn(items["c"], "e1", state_values='{"who":"c"}'),
        ]
        assert await p.commit_turns(turns) == [True, False, True]
        assert await _values(p, "a") == {"who": "a"}
        assert await _values(p, "b") == {}
        assert await _values(p, "c") == {"who": "c"}

    run(body)


def test_values_move_with_the_instance_and_go_with_it(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        following = Outbound(instance_id="a", message=kit.message("start", 2))
        first = kit.turn(item, "e1", outbound=[following], state_values='{"n":1}')
        assert await p.commit_turns([first]) == [True]
        item = await kit.fetch_one(p, "a")
        moved = kit.turn(item, "n1", execution_id=2, history_start=0)
        assert await p.commit_turns([moved]) == [True]
        record = await p.get_instance("a")
        assert record is not None and record.execution_id == 2
        assert await _values(p, "a") == {"n": 1}
        assert await p.delete_instance("a")
        assert await p.read_values("a") is None

    run(body)
