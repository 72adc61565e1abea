"""Group commit: one commit in flight, callers queued meanwhile share the next.

`perdure._group_commit.GroupCommit` sits between a dispatcher and its
provider's ``commit_turns`` (issue 17): the dispatcher's fetched turns and
the fused turns of its worker's results used to commit separately.
"""

from __future__ import annotations

import asyncio

import pytest

from perdure._group_commit import GroupCommit


class Store:
    """A fake ``commit_turns``: records rounds; can be held or made to fail."""

    def __init__(self) -> None:
        self.rounds: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def commit(self, turns: list[str]) -> tuple[list[str], list[bool]]:
        self.rounds.append(list(turns))
        await self.gate.wait()
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        # "bad" turns are rejected, the others commit; turns come back
        # updated (as claim_work replaces outputs).
        return [t.upper() for t in turns], [not t.startswith("bad") for t in turns]


def test_a_lone_caller_commits_at_once_in_its_own_task() -> None:
    async def body() -> None:
        store = Store()
        group = GroupCommit(store.commit)
        assert await group.commit(["a", "bad1"]) == (["A", "BAD1"], [True, False])
        assert await group.commit(["b"]) == (["B"], [True])
        assert store.rounds == [["a", "bad1"], ["b"]]

    asyncio.run(body())


def test_callers_arriving_during_a_commit_share_the_next_one() -> None:
    async def body() -> None:
        store = Store()
        group = GroupCommit(store.commit)
        store.gate.clear()
        first = asyncio.create_task(group.commit(["a"]))
        await asyncio.sleep(0)
        queued = [
            asyncio.create_task(group.commit(["b", "bad2"])),
            asyncio.create_task(group.commit(["c"])),
        ]
        await asyncio.sleep(0)
        assert store.rounds == [["a"]]  # the others wait for it
        store.gate.set()
        assert await first == (["A"], [True])
        assert [await t for t in queued] == [
            (["B", "BAD2"], [True, False]),
            (["C"], [True]),
        ]
        assert store.rounds == [["a"], ["b", "bad2", "c"]]
        await group.wait_idle()

    asyncio.run(body())


def test_a_failed_round_fails_its_callers_only() -> None:
    async def body() -> None:
        store = Store()
        group = GroupCommit(store.commit)
        store.gate.clear()
        first = asyncio.create_task(group.commit(["a"]))
        await asyncio.sleep(0)
        second = asyncio.create_task(group.commit(["b"]))
        await asyncio.sleep(0)
        store.fail = RuntimeError("storage down")
        store.gate.set()
        with pytest.raises(RuntimeError, match="storage down"):
            await first
        assert await second == (["B"], [True])
        assert await group.commit(["c"]) == (["C"], [True])

    asyncio.run(body())


def test_a_caller_cancelled_while_queued_is_left_out() -> None:
    async def body() -> None:
        store = Store()
        group = GroupCommit(store.commit)
        store.gate.clear()
        first = asyncio.create_task(group.commit(["a"]))
        await asyncio.sleep(0)
        gone = asyncio.create_task(group.commit(["gone"]))
        kept = asyncio.create_task(group.commit(["kept"]))
        await asyncio.sleep(0)
        gone.cancel()
        store.gate.set()
        await first
        assert await kept == (["KEPT"], [True])
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert store.rounds == [["a"], ["kept"]]

    asyncio.run(body())
