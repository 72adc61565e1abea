"""The provider conformance suite's fixtures.

Every test runs against each backend: a SQLite file, SQLite in memory, and
PostgreSQL when ``PERDURE_TEST_POSTGRES_URL`` is set (with ``CI=true`` a
missing URL fails instead of skipping, so CI cannot silently skip it).

The tests and the ``provider``, ``run`` and ``kit`` fixtures come from
`perdure.providers.conformance`; this file supplies the one fixture the
suite asks of its user, ``backend``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from perdure.providers import Provider
from perdure.providers.conformance import Backend, kit, provider, run
from perdure.providers.postgres import PostgresProvider
from perdure.providers.sqlite import SqliteProvider

FreshPostgres = Callable[..., AbstractAsyncContextManager[PostgresProvider]]


def _postgres_backend() -> Iterator[Backend]:
    url = os.environ.get("PERDURE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PERDURE_TEST_POSTGRES_URL is not set")
        pytest.skip("PERDURE_TEST_POSTGRES_URL is not set")
    try:
        from perdure.providers.postgres import PostgresProvider
    except ImportError as exc:
        pytest.fail(f"PERDURE_TEST_POSTGRES_URL is set but the provider fails: {exc}")
    schema = f"perdure_test_{uuid.uuid4().hex[:12]}"

    def make() -> Provider:
        provider: Provider = PostgresProvider(url, schema=schema)
        return provider

    yield Backend("postgres", make, shared=True)

    async def drop() -> None:
        provider = make()
        drop_schema = getattr(provider, "drop_schema", None)
        if drop_schema is None:
            return
        await provider.open()
        try:
            await drop_schema()
        finally:
            await provider.close()

    asyncio.run(drop())


@pytest.fixture(
    params=[
        "sqlite-file",
        "sqlite-memory",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite-file":
        path = str(tmp_path / "perdure.db")
        yield Backend("sqlite-file", lambda: SqliteProvider(path), shared=True)
    elif request.param == "sqlite-memory":
        yield Backend("sqlite-memory", lambda: SqliteProvider(":memory:"), shared=False)
    else:
        yield from _postgres_backend()


__all__ = ["backend", "kit", "provider", "run"]


@pytest.fixture
def fresh_pg(pg_url: str) -> FreshPostgres:
    """Open a `PostgresProvider` (its keyword options) on a fresh schema.

    The schema is dropped and the provider closed when the block ends.
    """

    @contextlib.asynccontextmanager
    async def opened(**options: Any) -> AsyncIterator[PostgresProvider]:
        schema = f"perdure_t_{uuid.uuid4().hex[:10]}"
        provider = PostgresProvider(pg_url, schema=schema, **options)
        await provider.open()
        try:
            yield provider
        finally:
            await provider.drop_schema()
            await provider.close()

    return opened
