"""Conformance: paging through instances with filters, and purging them (§10)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from perdure.providers import InstanceQuery, Provider
from perdure.providers.conformance._fixtures import Kit, Run

__all__ = [
    "test_purge_deletes_finished_top_level_instances_with_children",
    "test_purge_refuses_unfinished_statuses",
    "test_purge_stops_at_its_limit",
    "test_query_a_bad_cursor_is_a_value_error",
    "test_query_filters_combine",
    "test_query_pages_do_not_skip_or_repeat_when_rows_are_added",
    "test_query_pages_through_everything_newest_first",
]


async def _finish(p: Provider, kit: type[Kit], iid: str, status: str) -> None:
    item = await kit.fetch_one(p, iid)
    turn = kit.turn(item, "end", status=status, output='"ok"')
    assert await p.commit_turns([turn]) == [True]


async def _all_ids(p: Provider, query: InstanceQuery) -> list[str]:
    seen: list[str] = []
    while True:
        batch = await p.query_instances(query)
        seen += [r.instance_id for r in batch.records]
        if batch.next_cursor is None:
            return seen
        query = dataclasses.replace(query, cursor=batch.next_cursor)


def test_query_pages_through_everything_newest_first(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        # No sleeps: many rows share created_at; creation order breaks ties.
        ids = [f"i{n:02}" for n in range(11)]
        for iid in ids:
            await p.create_instance(kit.new(iid))
        first = await p.query_instances(InstanceQuery(limit=4))
        assert [r.instance_id for r in first.records] == ids[::-1][:4]
        assert first.next_cursor is not None
        assert await _all_ids(p, InstanceQuery(limit=4)) == ids[::-1]
        everything = await p.query_instances(InstanceQuery(limit=11))
        assert everything.next_cursor is None  # exactly full: no empty page
        assert len(everything.records) == 11

    run(body)


def test_query_filters_combine(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a", name="pay", version="1"))
        await p.create_instance(kit.new("b", name="pay", version="2"))
        await p.create_instance(kit.new("c", name="ship", version="1"))
        await asyncio.sleep(0.01)
        middle = p.clock()
        await asyncio.sleep(0.01)
        await p.create_instance(kit.new("d", name="pay", version="2"))
        await _finish(p, kit, "b", "Completed")
        pages: dict[str, list[str]] = {}
        for label, kw in {
            "pay": {"name": "pay"},
            "pay2": {"name": "pay", "version": "2"},
            "v1": {"version": "1"},
            "done": {"status": "Completed"},
            "running pay": {"status": "Running", "name": "pay"},
            "before": {"created_before": middle},
            "after": {"created_after": middle},
            "none": {"name": "nothing"},
        }.items():
            found = await p.query_instances(InstanceQuery(**kw))  # type: ignore[arg-type]
            pages[label] = [r.instance_id for r in found.records]
        assert pages == {
            "pay": ["d", "b", "a"],
            "pay2": ["d", "b"],
            "v1": ["c", "a"],
            "done": ["b"],
            "running pay": ["d", "a"],
            "before": ["c", "b", "a"],
            "after": ["d"],
            "none": [],
        }

    run(body)


def test_query_pages_do_not_skip_or_repeat_when_rows_are_added(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        for n in range(6):
            await p.create_instance(kit.new(f"old{n}"))
        first = await p.query_instances(InstanceQuery(limit=3))
        for n in range(3):  # newer than every row already listed
            await p.create_instance(kit.new(f"new{n}"))
        assert first.next_cursor is not None
        rest = await _all_ids(p, InstanceQuery(limit=2, cursor=first.next_cursor))
        listed = [r.instance_id for r in first.records] + rest
        assert listed == [f"old{n}" for n in range(5, -1, -1)]

    run(body)


def test_query_a_bad_cursor_is_a_value_error(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        for cursor in ("", "nonsense", "c1:nan:3", "c1:1.0:x"):
            with pytest.raises(ValueError, match="cursor"):
                await p.query_instances(InstanceQuery(cursor=cursor))

    run(body)


def test_purge_deletes_finished_top_level_instances_with_children(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        for iid in ("done", "failed", "running", "young"):
            await p.create_instance(kit.new(iid))
        await p.create_instance(kit.new("child", parent_instance_id="done"))
        await _finish(p, kit, "child", "Completed")
        await _finish(p, kit, "done", "Completed")
        await _finish(p, kit, "failed", "Failed")
        await asyncio.sleep(0.01)
        cutoff = p.clock()
        await asyncio.sleep(0.01)
        await _finish(p, kit, "young", "Completed")  # ended after the cutoff
        deleted = await p.purge_instances(
            statuses=["Completed", "Failed"], finished_before=cutoff, limit=100
        )
        assert deleted == 2  # done (with its child) and failed
        for gone in ("done", "child", "failed"):
            assert await p.get_instance(gone) is None
            assert await p.read_history(gone, 1) == []
        for kept in ("running", "young"):
            assert await p.get_instance(kept) is not None

    run(body)


def test_purge_stops_at_its_limit(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        for n in range(5):
            await p.create_instance(kit.new(f"i{n}"))
            await _finish(p, kit, f"i{n}", "Cancelled")
        later = p.clock() + 60
        assert (
            await p.purge_instances(
                statuses=["Cancelled"], finished_before=later, limit=3
            )
            == 3
        )
        assert (
            await p.purge_instances(
                statuses=["Cancelled"], finished_before=later, limit=3
            )
            == 2
        )
        assert (
            await p.purge_instances(
                statuses=["Cancelled"], finished_before=later, limit=3
            )
            == 0
        )

    run(body)


def test_purge_refuses_unfinished_statuses(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        for statuses in (["Running"], ["Completed", "Suspended"], []):
            with pytest.raises(ValueError, match="finished"):
                await p.purge_instances(
                    statuses=statuses,  # type: ignore[arg-type]
                    finished_before=p.clock() + 60,
                    limit=10,
                )
        assert await p.get_instance("a") is not None

    run(body)
