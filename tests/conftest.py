"""Shared test fixtures.

* ``async def test_...`` functions run in a fresh event loop each (a tiny
  plugin in the style of trio's, so no pytest-asyncio is needed).
* ``storage_url`` is parametrized over the backends every end-to-end test
  runs against: a SQLite file always, PostgreSQL when
  ``PERDURE_TEST_POSTGRES_URL`` is set (each test gets its own schema via the
  ``schema`` URL parameter). With ``CI=true`` a missing PostgreSQL URL fails.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}
        asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), timeout=120))
        return True
    return None


def postgres_url() -> str | None:
    """The test server URL, or None (skips; fails under CI=true)."""
    url = os.environ.get("PERDURE_TEST_POSTGRES_URL")
    if not url and os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but PERDURE_TEST_POSTGRES_URL is not set")
    return url or None


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL test server's URL (skips without one; fails under CI=true)."""
    url = postgres_url()
    if url is None:
        pytest.skip("PERDURE_TEST_POSTGRES_URL is not set")
    return url


def with_schema(url: str, schema: str) -> str:
    """Add the provider's ``schema`` parameter to a PostgreSQL URL."""
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty storage URL for one test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'perdure.db'}"
        return
    url = postgres_url()
    if url is None:
        pytest.skip("PERDURE_TEST_POSTGRES_URL is not set")
    schema = f"perdure_t_{uuid.uuid4().hex[:12]}"
    yield with_schema(url, schema)
    asyncio.run(_drop_schema(url, schema))


async def _drop_schema(url: str, schema: str) -> None:
    from perdure.providers.postgres import PostgresProvider

    provider = PostgresProvider(url, schema=schema)
    await provider.open()
    try:
        await provider.drop_schema()
    finally:
        await provider.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL (for tests that only make sense on one backend)."""
    return f"sqlite:///{tmp_path / 'perdure.db'}"
