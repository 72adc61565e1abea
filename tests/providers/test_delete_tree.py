"""Deleting an instance deletes its sub-orchestrations, recursively (probe F3)."""

from __future__ import annotations

from perdure.providers import ActivityWork, Message, Outbound, Provider
from perdure.providers.conformance._fixtures import Kit, Run

PARENTS = {"c1": "root", "c2": "root", "g1": "c1", "other": None}


async def _tree(p: Provider, kit: type[Kit]) -> None:
    await p.create_instance(kit.new("root"))
    for iid, parent in PARENTS.items():
        await p.create_instance(kit.new(iid, parent_instance_id=parent))
    for item in (await kit.fetch_map(p)).values():
        iid = item.instance.instance_id
        work = ActivityWork(
            instance_id=iid, execution_id=1, event_id=1, name="act", body="{}"
        )
        turn = kit.turn(item, "started", activities=[work])
        assert await p.commit_turns([turn]) == [True]
        await p.enqueue(iid, Message(kind="event", body="1"))


def test_delete_takes_sub_orchestrations_recursively(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await _tree(p, kit)
        assert await p.delete_instance("root") is True
        for gone in ("root", "c1", "c2", "g1"):
            assert await p.get_instance(gone) is None, gone
            assert await p.read_history(gone, 1) == []
        other = await p.get_instance("other")
        assert other is not None
        assert await p.read_history("other") == ['"started"']
        assert [w.instance_id for w in await p.fetch_activities(10, kit.lease)] == [
            "other"
        ]
        assert list(await kit.fetch_map(p)) == ["other"]

    run(body)


def test_delete_of_a_child_keeps_its_parent_and_siblings(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await _tree(p, kit)
        assert await p.delete_instance("c1") is True
        assert await p.get_instance("g1") is None
        for kept in ("root", "c2", "other"):
            assert await p.get_instance(kept) is not None, kept

    run(body)


def test_delete_ends_on_a_cycle_of_parent_links(run: Run, kit: type[Kit]) -> None:
    # Possible once ids are re-used: "x" made "y", was deleted without it
    # (old versions), and "y" then made a new "x".
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("y", parent_instance_id="x"))
        await p.create_instance(kit.new("x", parent_instance_id="y"))
        assert await p.delete_instance("x") is True
        assert await p.get_instance("y") is None
        assert await p.delete_instance("y") is False

    run(body)


def test_turn_of_a_deleted_child_is_rejected(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("root"))
        await p.create_instance(kit.new("kid", parent_instance_id="root"))
        item = await kit.fetch_one(p, "kid")
        assert await p.delete_instance("root") is True
        await p.create_instance(kit.new("root"))  # the id is re-used
        done = Message(kind="sub_completed", body='"old"')
        out = [Outbound(instance_id="root", message=done)]
        turn = kit.turn(item, "done", status="Completed", outbound=out)
        assert await p.commit_turns([turn]) == [False]
        root = await kit.fetch_one(p, "root")
        assert [m.kind for m in root.messages] == ["start"]

    run(body)
