"""Zeroes ahead of the WAL (`_sqlite_wal`): present, harmless, and optional.

Fsynced commits that do not grow the WAL file are cheaper (no file-size
change to make durable), so power-loss-safe connections keep zeroes past
the WAL's end. These tests check they are written only where they help,
that a copy of the files taken mid-run (what a power cut leaves) opens
with every committed write, and that a failing write of zeroes changes
nothing but the zeroing.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from perdure.providers import Message, NewInstance, _sqlite_wal as wal
from perdure.providers._sqlite_conn import Durability
from perdure.providers.sqlite import SqliteProvider


def _new(instance_id: str) -> NewInstance:
    start = Message(kind="start", body="{}")
    return NewInstance(instance_id=instance_id, name="o", version="1", start=start)


def _run(
    provider: SqliteProvider, body: Callable[[SqliteProvider], Awaitable[None]]
) -> None:
    async def main() -> None:
        await provider.open()
        try:
            await body(provider)
        finally:
            await provider.close()

    asyncio.run(main())


def _size(db: Path | str) -> int:
    """The size of *db*'s WAL file."""
    return os.stat(f"{db}-wal").st_size


def _zero_tail(path: Path) -> int:
    """Bytes of zeroes at the end of *path*."""
    data = path.read_bytes()
    return len(data) - len(data.rstrip(b"\0"))


def test_a_power_loss_safe_database_keeps_zeroes_past_its_wal(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    seen: list[int] = []

    async def body(p: SqliteProvider) -> None:
        for i in range(5):
            await p.create_instance(_new(f"i{i}"))
        seen.append(_zero_tail(Path(f"{db}-wal")))
        seen.append(_size(db))

    _run(SqliteProvider(str(db)), body)
    zeroes, size = seen
    assert zeroes > 0 and size >= wal.CHUNK  # the commits wrote over the first


@pytest.mark.parametrize("durability", ["process-crash", "memory"])
def test_no_zeroes_where_commits_are_not_fsynced(
    tmp_path: Path, durability: str
) -> None:
    db = tmp_path / "n.db"
    provider = (
        SqliteProvider(":memory:")
        if durability == "memory"
        else SqliteProvider(str(db), durability="process-crash")
    )

    async def body(p: SqliteProvider) -> None:
        await p.create_instance(_new("a"))
        assert p._zeroes is None
        if durability != "memory":
            assert _zero_tail(Path(f"{db}-wal")) < 1024  # a frame's padding at most

    _run(provider, body)


def test_a_copy_taken_mid_run_opens_with_every_commit(tmp_path: Path) -> None:
    # What a power cut leaves: the database and its WAL (with the zeroes
    # after the last frame) as they are on disk, no shared-memory index.
    db, copy = tmp_path / "live.db", tmp_path / "copy.db"

    async def body(p: SqliteProvider) -> None:
        for i in range(300):  # past a chunk of zeroes: written again
            await p.create_instance(_new(f"i{i:03}"))
        assert _zero_tail(Path(f"{db}-wal")) > 0
        shutil.copy(db, copy)
        shutil.copy(f"{db}-wal", f"{copy}-wal")

    _run(SqliteProvider(str(db)), body)
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = [r[0] for r in conn.execute("SELECT instance_id FROM instances")]
    finally:
        conn.close()
    assert sorted(ids) == [f"i{i:03}" for i in range(300)]


def test_zeroes_come_back_after_the_wal_is_cut(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def body(p: SqliteProvider) -> None:
        await p.create_instance(_new("a"))
        p._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert _size(db) == 0
        await p.create_instance(_new("b"))
        assert _zero_tail(Path(f"{db}-wal")) > 0
        assert _size(db) >= wal.CHUNK
        assert {r.instance_id for r in await p.list_instances()} == {"a", "b"}

    _run(SqliteProvider(str(db)), body)


def test_a_failing_write_of_zeroes_only_stops_the_zeroing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)

    async def body(p: SqliteProvider) -> None:
        await p.create_instance(_new("a"))
        await p.create_instance(_new("b"))
        assert p._zeroes is not None and not p._zeroes.enabled
        assert {r.instance_id for r in await p.list_instances()} == {"a", "b"}

    _run(SqliteProvider(str(tmp_path / "f.db")), body)


async def _take_turns(db: str, durability: Durability) -> int:
    """200 commits by two connections in turn; the WAL's size after."""
    one = SqliteProvider(db, durability=durability)
    two = SqliteProvider(db, durability=durability)
    await one.open()
    await two.open()
    try:
        for i in range(200):
            await (one if i % 2 else two).create_instance(_new(f"i{i:03}"))
        names = {r.instance_id for r in await one.list_instances(limit=500)}
        assert names == {f"i{i:03}" for i in range(200)}
        return _size(db)
    finally:
        await one.close()
        await two.close()


def test_two_connections_on_one_file_both_keep_their_writes(tmp_path: Path) -> None:
    # Each zeroes only while it holds the write lock, past the file's end.
    db = str(tmp_path / "two.db")
    size = asyncio.run(_take_turns(db, "power-loss"))
    frames = asyncio.run(_take_turns(str(tmp_path / "plain.db"), "process-crash"))
    # Zeroes are looked for, not remembered: taking turns does not make
    # each connection add a chunk of its own every time.
    assert frames < size <= frames + 2 * wal.CHUNK
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        count = conn.execute("SELECT count(*) FROM instances").fetchone()[0]
    finally:
        conn.close()
    assert count == 200


def test_the_zeroing_never_stats_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On Linux 6.x a stat marks the file's timestamps as seen, and the next
    # write must then record a fine-grained ctime: each fsynced commit cost
    # ~40 us more when the zeroing looked at the WAL's size with fstat.
    wal_fds: set[int] = set()
    opened = os.open

    def tracked_open(path: str, flags: int, *args: int) -> int:
        fd = opened(path, flags, *args)
        if str(path).endswith("-wal"):
            wal_fds.add(fd)
        return fd

    stat = os.fstat

    def no_wal_stat(fd: int) -> os.stat_result:
        assert fd not in wal_fds, "the WAL was stat()ed"
        return stat(fd)

    monkeypatch.setattr(os, "open", tracked_open)
    monkeypatch.setattr(os, "fstat", no_wal_stat)
    db = tmp_path / "s.db"

    async def body(p: SqliteProvider) -> None:
        for i in range(300):  # past a chunk of zeroes: its size looked up
            await p.create_instance(_new(f"i{i:03}"))
        assert wal_fds and _zero_tail(Path(f"{db}-wal")) > 0

    _run(SqliteProvider(str(db)), body)
