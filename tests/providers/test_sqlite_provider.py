"""SQLite-specific behaviour, and `open_provider`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from perdure._errors import StorageError
from perdure.providers import ActivityWork, OrchestrationItem, open_provider
from perdure.providers.conformance._fixtures import Kit
from perdure.providers.helpers import load_migrations
from perdure.providers.sqlite import SqliteProvider

T = TypeVar("T")


def run_on(path: Path | str, body: Callable[[SqliteProvider], Awaitable[T]]) -> T:
    async def main() -> T:
        p = SqliteProvider(str(path))
        await p.open()
        try:
            return await body(p)
        finally:
            await p.close()

    return asyncio.run(main())


def test_concurrent_first_opens_of_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "race.db")

    async def main() -> None:
        providers = [SqliteProvider(path) for _ in range(4)]
        await asyncio.gather(*(p.open() for p in providers))
        for p in providers:
            await p.close()

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        versions = [
            row[0] for row in conn.execute("SELECT version FROM schema_version")
        ]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    # Each migration applied exactly once, though four opened at once.
    assert versions == [v for v, _ in load_migrations("sqlite")]
    assert len(versions) >= 3
    assert mode == "wal"


def test_sqlite_errors_become_storage_errors(tmp_path: Path) -> None:
    async def main() -> None:
        p = SqliteProvider(str(tmp_path / "missing-dir" / "x.db"))
        with pytest.raises(StorageError):
            await p.open()
        with pytest.raises(StorageError, match="open"):
            await p.get_instance("a")

    asyncio.run(main())


def test_wait_wakes_when_a_delayed_message_becomes_due(
    tmp_path: Path, kit: type[Kit]
) -> None:
    async def body(p: SqliteProvider) -> None:
        await kit.started(p, "a")
        await p.enqueue("a", kit.message(visible_at=time.time() + 0.3))
        assert await p.fetch_orchestrations(10, 30) == []
        started = time.monotonic()
        await p.wait("orchestrations", 5)
        assert await p.fetch_orchestrations(10, 30) != []
        assert 0.2 <= time.monotonic() - started < 2

    run_on(tmp_path / "x.db", body)


def test_wait_wakes_when_an_activity_retry_becomes_due(
    tmp_path: Path, kit: type[Kit]
) -> None:
    async def body(p: SqliteProvider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")
        work = ActivityWork(
            instance_id="a", execution_id=1, event_id=1, name="act", body="{}"
        )
        assert await p.commit_turns([kit.turn(item, "e1", activities=[work])]) == [True]
        [activity] = await p.fetch_activities(10, 30)
        await p.abandon_activity(activity.id, activity.lock_token, delay=0.3)
        assert await p.fetch_activities(10, 30) == []
        started = time.monotonic()
        await p.wait("activities", 5)
        assert [a.attempt for a in await p.fetch_activities(10, 30)] == [2]
        assert 0.2 <= time.monotonic() - started < 2

    run_on(tmp_path / "x.db", body)


def test_integrity_error_rolls_back_only_that_turn(
    tmp_path: Path, kit: type[Kit]
) -> None:
    """A turn whose rows clash with stored ones is rejected whole."""
    path = tmp_path / "x.db"

    async def setup(p: SqliteProvider) -> dict[str, OrchestrationItem]:
        await p.create_instance(kit.new("a"))
        await p.create_instance(kit.new("b"))
        return await kit.fetch_map(p)

    items = run_on(path, setup)
    # Corrupt storage behind the provider's back: an event beyond history_len.
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO history VALUES ('a', 1, 2, '\"stray\"')")
    conn.close()

    async def commit(p: SqliteProvider) -> None:
        turns = [kit.turn(items["a"], "a1", "a2"), kit.turn(items["b"], "b1")]
        assert await p.commit_turns(turns) == [False, True]
        assert [json.loads(e) for e in await p.read_history("a")] == ["stray"]
        record = await p.get_instance("a")
        assert record is not None and record.status == "Running"
        # The guard's lock release was rolled back too: "a" is still locked.
        assert await p.fetch_orchestrations(10, 30) == []
        # ... and its token still holds it.
        assert await p.commit_turns([kit.turn(items["a"], "a1")]) == [True]

    run_on(path, commit)


def test_wait_works_on_a_provider_built_without_a_loop(tmp_path: Path) -> None:
    p = SqliteProvider(str(tmp_path / "x.db"))  # no event loop exists here

    async def main() -> None:
        await p.open()
        try:
            await p.wait("instances", 0.01)
        finally:
            await p.close()

    asyncio.run(main())
    asyncio.run(main())  # and again on a second loop


# --- open_provider --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:///dir/relative.db", "dir/relative.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLITE:///x.db", "x.db"),
    ],
)
def test_open_provider_sqlite_urls(url: str, path: str) -> None:
    provider = open_provider(url)
    assert isinstance(provider, SqliteProvider)
    assert provider.path == path


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "mysql://x", "x.db"]
)
def test_open_provider_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_provider(url)


def test_open_provider_returns_provider_objects_as_is(tmp_path: Path) -> None:
    provider = SqliteProvider(str(tmp_path / "x.db"))
    assert open_provider(provider) is provider
    with pytest.raises(TypeError):
        open_provider(42)  # type: ignore[arg-type]  # deliberately not a URL


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db"])
def test_open_provider_postgres_without_extra(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # A None entry in sys.modules makes the import fail like a missing module.
    monkeypatch.setitem(sys.modules, "perdure.providers.postgres", None)
    with pytest.raises(StorageError, match=r"pip install \"perdure\[postgres\]\""):
        open_provider(url)


def test_a_failing_call_in_a_grouped_write_leaves_the_others_intact(
    tmp_path: Path,
) -> None:
    # Writes issued in one loop tick share a transaction; one of them failing
    # (a duplicate id) must fail alone while the others commit.
    from perdure.providers import Message, NewInstance

    def new(instance_id: str) -> NewInstance:
        start = Message(kind="start", body="{}")
        return NewInstance(instance_id=instance_id, name="o", version="1", start=start)

    async def body(p: SqliteProvider) -> None:
        await p.create_instance(new("a"))
        results = await asyncio.gather(
            p.create_instance(new("b")),
            p.create_instance(new("a")),
            p.create_instance(new("c")),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert type(results[1]).__name__ == "InstanceExists"
        ids = sorted(r.instance_id for r in await p.list_instances())
        assert ids == ["a", "b", "c"]
        items = await p.fetch_orchestrations(10, 30)
        assert sorted(i.instance.instance_id for i in items) == ["a", "b", "c"]
        assert all(len(i.messages) == 1 for i in items)

    run_on(tmp_path / "group.db", body)
