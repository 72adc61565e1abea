"""Storage perdure must not touch or expose (reliability probe F10-F13).

A schema newer than the packaged migrations and a foreign SQLite file are
refused before anything is written; new SQLite files are owner-only; a
password never appears in a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import os
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from perdure._errors import StorageError
from perdure.providers import Provider, open_provider
from perdure.providers._urls import redact_url
from perdure.providers.conformance._fixtures import Backend, Kit
from perdure.providers.sqlite import SqliteProvider

FUTURE = 99


def _newest(dialect: str) -> int:
    folder = importlib.resources.files("perdure.providers").joinpath(
        "migrations", dialect
    )
    return max(int(entry.name.split("_")[0]) for entry in folder.iterdir())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _mark_future(provider: Provider, *, undo: bool = False) -> None:
    """Record (or with *undo*, remove) schema version FUTURE on the storage."""
    if isinstance(provider, SqliteProvider):
        conn = sqlite3.connect(provider.path)
        with conn:
            conn.execute("INSERT INTO schema_version VALUES (?, 0)", (FUTURE,))
        conn.close()
        return
    import psycopg

    from perdure.providers._pg_schema import quote_ident
    from perdure.providers.postgres import PostgresProvider

    assert isinstance(provider, PostgresProvider), provider
    conninfo = provider._conninfo
    schema = quote_ident(provider.schema)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as c:
        if undo:
            await c.execute(
                f"DELETE FROM {schema}.schema_version WHERE version = {FUTURE}"
            )
        else:
            await c.execute(f"INSERT INTO {schema}.schema_version VALUES ({FUTURE}, 0)")


def test_a_newer_schema_is_refused_naming_both_versions(
    backend: Backend, kit: type[Kit]
) -> None:
    if not backend.shared:
        pytest.skip("a private in-memory database does not outlive its object")

    async def main() -> None:
        first = backend.make()
        await first.open()
        await first.create_instance(kit.new("a"))
        await first.close()
        await _mark_future(first)
        dialect = "sqlite" if isinstance(first, SqliteProvider) else "postgres"
        newest = _newest(dialect)
        before = _digest(Path(first.path)) if isinstance(first, SqliteProvider) else ""
        again = backend.make()
        with pytest.raises(StorageError) as caught:
            await again.open()
        message = str(caught.value)
        assert f"schema version {FUTURE}" in message
        assert f"up to {newest}" in message
        if isinstance(first, SqliteProvider):
            assert _digest(Path(first.path)) == before
        else:
            await _mark_future(first, undo=True)  # so the fixture can drop it

    asyncio.run(main())


def _foreign(path: Path, table: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute(f"INSERT INTO {table} (total) VALUES (12.5)")
    conn.close()


@pytest.mark.parametrize("table", ["instances", "invoices"])
def test_a_foreign_sqlite_file_is_refused_unchanged(tmp_path: Path, table: str) -> None:
    path = tmp_path / "app.db"
    _foreign(path, table)
    before = _digest(path)

    async def main() -> None:
        provider = SqliteProvider(str(path))
        with pytest.raises(StorageError, match="not a perdure database"):
            await provider.open()

    asyncio.run(main())
    assert _digest(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert not (tmp_path / "app.db-wal").exists()


def test_an_empty_sqlite_file_is_still_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()

    async def main() -> None:
        provider = SqliteProvider(str(path))
        await provider.open()
        assert await provider.get_instance("a") is None
        await provider.close()

    asyncio.run(main())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_new_sqlite_files_are_owner_only(tmp_path: Path, kit: type[Kit]) -> None:
    path = tmp_path / "perdure.db"
    old = os.umask(0o022)
    try:

        async def main() -> None:
            provider = SqliteProvider(str(path))
            await provider.open()
            await provider.create_instance(kit.new("a"))
            for suffix in ("", "-wal", "-shm"):
                mode = stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
                assert mode == 0o600, (suffix, oct(mode))
            await provider.close()

        asyncio.run(main())
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresq://app:s3cretPW@db/app", "postgresq://app:***@db/app"),
        ("mysql://u:s3cretPW@h/db", "mysql://u:***@h/db"),
        ("postgresql://u:s3c@ret@h:5432/db?x=1", "postgresql://u:***@h:5432/db?x=1"),
        ("postgresql://u@h/db?password=s3cretPW&x=1", None),
        ("host=h password=s3cretPW dbname=d", None),
        ("sqlite:///a:b@c.db", "sqlite:///a:b@c.db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_redact_url_hides_passwords(url: str, shown: str | None) -> None:
    redacted = redact_url(url)
    assert "s3c" not in redacted
    if shown is not None:
        assert redacted == shown


@pytest.mark.parametrize(
    "url", ["postgresq://app:s3cretPW@db/app", "mysql://u:s3cretPW@h/db"]
)
def test_unknown_url_schemes_do_not_echo_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="unknown storage URL scheme") as caught:
        open_provider(url)
    assert "s3cretPW" not in str(caught.value)
    assert "***" in str(caught.value)
