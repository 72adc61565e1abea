"""Conformance: the routed activity fetch (`RoutesActivities`, docs/routing.md).

Names, tags, priorities, concurrency and rate limits, sessions, and the
count of work no runtime takes. A provider without `RoutesActivities`
skips these tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from perdure.providers import (
    ActivityLimit,
    ActivityResult,
    ActivityRouting,
    ActivityWork,
    Provider,
    RoutesActivities,
)
from perdure.providers.conformance._fixtures import Backend, Kit, Run

__all__ = [
    "test_a_concurrency_limit_counts_the_leases_of_every_fetch",
    "test_a_rate_limit_counts_every_start_in_its_window",
    "test_a_session_stays_with_its_owner_until_its_lease_expires",
    "test_released_sessions_go_to_anyone_at_once",
    "test_routed_fetch_takes_only_registered_names",
    "test_routed_fetch_takes_highest_priority_first",
    "test_tagged_work_goes_only_to_runtimes_with_its_tag",
    "test_waiting_activities_counts_what_routing_never_takes",
]


def routing(*names: str, **kw: Any) -> ActivityRouting:
    kw.setdefault("owner", "me")
    return ActivityRouting(names=names, **kw)


def _routes(p: Provider) -> RoutesActivities:
    if not isinstance(p, RoutesActivities):
        pytest.skip(f"{p!r} does not implement RoutesActivities")
    return p


async def schedule(p: Provider, kit: type[Kit], *works: dict[str, Any]) -> None:
    """Create instance ``a`` and commit one turn scheduling *works*."""
    await p.create_instance(kit.new("a"))
    item = await kit.fetch_one(p, "a")
    activities = [
        ActivityWork(
            instance_id="a",
            execution_id=1,
            event_id=i + 1,
            name=w.pop("name", "act"),
            body=f'"{i + 1}"',
            **w,
        )
        for i, w in enumerate(works)
    ]
    assert await p.commit_turns([kit.turn(item, "e", activities=activities)]) == [True]


def done(item: Any) -> ActivityResult:
    return ActivityResult(
        id=item.id,
        lock_token=item.lock_token,
        instance_id=item.instance_id,
        message=Kit.message("activity_completed"),
    )


def test_routed_fetch_takes_only_registered_names(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        r = _routes(p)
        await schedule(p, kit, {"name": "mine"}, {"name": "theirs"})
        taken = await r.fetch_routed_activities(10, kit.lease, routing("mine"))
        assert [i.name for i in taken] == ["mine"]
        assert await r.fetch_routed_activities(10, kit.lease, routing("mine")) == []
        [theirs] = await r.fetch_routed_activities(10, kit.lease, routing("theirs"))
        assert (theirs.name, theirs.attempt) == ("theirs", 1)

    run(body)


def test_tagged_work_goes_only_to_runtimes_with_its_tag(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        r = _routes(p)
        await schedule(p, kit, {"tag": "gpu"}, {}, {"tag": "tpu"})
        plain = await r.fetch_routed_activities(10, kit.lease, routing("act"))
        assert [i.body for i in plain] == ['"2"']
        gpu = routing("act", tags=frozenset({"gpu", "x"}))
        assert [i.body for i in await r.fetch_routed_activities(10, 1, gpu)] == ['"1"']
        tpu = routing("act", tags=frozenset({"tpu"}))
        assert [i.body for i in await r.fetch_routed_activities(10, 1, tpu)] == ['"3"']

    run(body)


def test_routed_fetch_takes_highest_priority_first(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        r = _routes(p)
        await schedule(
            p,
            kit,
            {"priority": 0},
            {"priority": 5, "name": "other"},
            {"priority": -1},
            {"priority": 5},
        )
        both = routing("act", "other")
        first = await r.fetch_routed_activities(2, kit.lease, both)
        assert sorted(i.body for i in first) == ['"2"', '"4"']
        [second] = await r.fetch_routed_activities(1, kit.lease, both)
        assert second.body == '"1"'
        [third] = await r.fetch_routed_activities(1, kit.lease, both)
        assert third.body == '"3"'

    run(body)


def test_a_concurrency_limit_counts_the_leases_of_every_fetch(
    run: Run, kit: type[Kit], backend: Backend
) -> None:
    limited = routing("act", limits=(ActivityLimit(name="act", concurrency=2),))

    async def body(p: Provider) -> None:
        r = _routes(p)
        await schedule(p, kit, *({} for _ in range(5)))
        other: Provider = p
        if backend.shared:
            other = backend.make()
            await other.open()
        try:
            first = await r.fetch_routed_activities(10, 30.0, limited)
            assert len(first) == 2
            # A second fetch (another runtime) sees the two leases.
            assert await _routes(other).fetch_routed_activities(10, 30, limited) == []
            # A runtime without the limit is not held back by it, but its
            # leases count for the others: every leased item of the name.
            [free] = await r.fetch_routed_activities(1, 30.0, routing("act"))
            await p.complete_activities([done(first[0])])
            assert await r.fetch_routed_activities(10, 30.0, limited) == []
            await p.complete_activities([done(free)])
            [third] = await r.fetch_routed_activities(10, 30.0, limited)
            # A retry put back frees its slot until it is fetched again.
            await p.abandon_activity(first[1].id, first[1].lock_token)
            [fourth] = await _routes(other).fetch_routed_activities(10, 30, limited)
            assert fourth.id != third.id
            assert await r.fetch_routed_activities(10, 30.0, limited) == []
        finally:
            if other is not p:
                await other.close()

    run(body)


def test_a_rate_limit_counts_every_start_in_its_window(
    run: Run, kit: type[Kit]
) -> None:
    window = 0.5
    rated = routing("act", limits=(ActivityLimit(name="act", rate=2, per=window),))

    async def body(p: Provider) -> None:
        r = _routes(p)
        await schedule(p, kit, *({} for _ in range(4)))
        first = await r.fetch_routed_activities(10, 30.0, rated)
        assert len(first) == 2
        # A retry is a new start: giving an item back frees no start.
        await p.abandon_activity(first[0].id, first[0].lock_token)
        assert await r.fetch_routed_activities(10, 30.0, rated) == []
        await asyncio.sleep(window * 1.5)
        again = await r.fetch_routed_activities(10, 30.0, rated)
        assert len(again) == 2
        assert await r.fetch_routed_activities(10, 30.0, rated) == []

    run(body)


def test_a_session_stays_with_its_owner_until_its_lease_expires(
    run: Run, kit: type[Kit]
) -> None:
    mine, theirs = routing("act", owner="A"), routing("act", owner="B")

    async def body(p: Provider) -> None:
        r = _routes(p)
        await schedule(p, kit, {"session": "s"}, {"session": "s"}, {})
        [a1] = await r.fetch_routed_activities(1, 0.3, mine)
        assert a1.session == "s"
        # B may take only the item without a session.
        [b1] = await r.fetch_routed_activities(10, 30.0, theirs)
        assert b1.session is None
        await p.complete_activities([done(a1)])
        assert await r.fetch_routed_activities(10, 30.0, theirs) == []
        assert await r.renew_activity_sessions("A", ["s"], 0.3) == []
        assert await r.renew_activity_sessions("B", ["s"], 0.3) == ["s"]
        await asyncio.sleep(0.5)  # A's session lease expires
        [b2] = await r.fetch_routed_activities(10, 30.0, theirs)
        assert b2.session == "s"
        assert await r.renew_activity_sessions("A", ["s"], 30.0) == ["s"]

    run(body)


def test_released_sessions_go_to_anyone_at_once(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        r = _routes(p)
        await schedule(p, kit, {"session": "s"}, {"session": "s"})
        [a1] = await r.fetch_routed_activities(1, 30.0, routing("act", owner="A"))
        await r.release_activity_sessions("A")
        [b1] = await r.fetch_routed_activities(10, 30.0, routing("act", owner="B"))
        assert (a1.session, b1.session) == ("s", "s")

    run(body)


def test_waiting_activities_counts_what_routing_never_takes(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        r = _routes(p)
        await schedule(
            p, kit, {"name": "gone"}, {"name": "gone"}, {"tag": "gpu"}, {}, {}
        )
        mine = routing("act")
        assert await r.waiting_activities(mine, 0.0) == [
            ("act", "gpu", 1),
            ("gone", None, 2),
        ]
        assert await r.waiting_activities(mine, 3600.0) == []
        gpu = routing("act", "gone", tags=frozenset({"gpu"}))
        assert await r.waiting_activities(gpu, 0.0) == []

    run(body)
