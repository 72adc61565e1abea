"""SQLite durability: power-loss safe by default, process-crash on request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from perdure.providers import open_provider
from perdure.providers.sqlite import SqliteProvider


def _synchronous(provider: SqliteProvider) -> int:
    async def read() -> int:
        await provider.open()
        try:
            row = provider._db().execute("PRAGMA synchronous").fetchone()
            return int(row[0])
        finally:
            await provider.close()

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("query", "expected", "level"),
    [
        ("", "power-loss", 2),  # FULL: each commit group is fsynced
        ("?durability=power-loss", "power-loss", 2),
        ("?durability=process-crash", "process-crash", 1),  # NORMAL
    ],
)
def test_url_chooses_the_durability(
    tmp_path: Path, query: str, expected: str, level: int
) -> None:
    provider = open_provider(f"sqlite:///{tmp_path / 'd.db'}{query}")
    assert isinstance(provider, SqliteProvider)
    assert provider.durability == expected
    assert provider.path == str(tmp_path / "d.db")
    assert _synchronous(provider) == level


def test_bad_durability_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'power-loss' or 'process-crash'"):
        open_provider(f"sqlite:///{tmp_path / 'd.db'}?durability=fast")
    with pytest.raises(ValueError, match="unknown option"):
        open_provider(f"sqlite:///{tmp_path / 'd.db'}?journal=off")
    with pytest.raises(ValueError, match="'power-loss' or 'process-crash'"):
        SqliteProvider(str(tmp_path / "d.db"), durability="none")  # type: ignore[arg-type]
