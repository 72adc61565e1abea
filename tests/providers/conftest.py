"""The provider conformance suite's fixtures.

Every test runs against each backend: a SQLite file, SQLite in memory, and
PostgreSQL when ``PERDURE_TEST_POSTGRES_URL`` is set (with ``CI=true`` a
missing URL fails instead of skipping, so CI cannot silently skip it).

Tests are plain functions: they hand an ``async def body(p)`` to the ``run``
fixture, which opens a fresh provider, awaits the body and closes it, all in
one ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from perdure.providers import (
    Message,
    NewInstance,
    OrchestrationItem,
    Provider,
    TurnCommit,
)
from perdure.providers.sqlite import SqliteProvider

T = TypeVar("T")
Body = Callable[[Provider], Awaitable[T]]

# Short enough to keep the suite quick, long enough not to expire while a
# slow CI machine is still between a fetch and the commit that follows.
LEASE = 0.3


@dataclass
class Backend:
    """How to make providers for one test's storage.

    Attributes:
        name: Parameter id.
        make: Returns a new, unopened provider object on the test's storage.
        shared: Whether two objects from ``make`` see the same data (false
            for SQLite ``:memory:``).
    """

    name: str
    make: Callable[[], Provider]
    shared: bool


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


@pytest.fixture
def provider(backend: Backend) -> Provider:
    return backend.make()


@pytest.fixture
def run(provider: Provider) -> Callable[[Body[Any]], Any]:
    """Open the test's provider, await ``body(provider)``, close it."""

    def runner(body: Body[T]) -> T:
        async def main() -> T:
            await provider.open()
            try:
                return await body(provider)
            finally:
                await provider.close()

        return asyncio.run(main())

    return runner


# --- builders shared by the test modules (via the ``kit`` fixture) -------


class Kit:
    """Small builders for records, so tests read as scenarios."""

    lease = LEASE

    @staticmethod
    def message(kind: str = "event", body: Any = None, **kw: Any) -> Message:
        return Message(kind=kind, body=json.dumps(body), **kw)

    @staticmethod
    def new(instance_id: str, **kw: Any) -> NewInstance:
        kw.setdefault("name", "wf")
        kw.setdefault("version", "1")
        kw.setdefault("start", Kit.message("start", {"input": instance_id}))
        return NewInstance(instance_id=instance_id, **kw)

    @staticmethod
    def events(start: int, *labels: str) -> list[tuple[int, str]]:
        """``(event_id, json)`` pairs numbered from ``start + 1``."""
        return [(start + 1 + i, json.dumps(label)) for i, label in enumerate(labels)]

    @staticmethod
    def turn(item: OrchestrationItem, *labels: str, **kw: Any) -> TurnCommit:
        """The turn answering *item*: consumes all its messages by default."""
        kw.setdefault("execution_id", item.instance.execution_id)
        kw.setdefault("history_start", item.history_len)
        kw.setdefault("consumed", [m.id for m in item.messages])
        kw.setdefault("events", Kit.events(kw["history_start"], *labels))
        kw.setdefault("lock_token", item.lock_token)
        return TurnCommit(instance_id=item.instance.instance_id, **kw)

    @staticmethod
    async def fetch_one(
        p: Provider, instance_id: str, lease: float = LEASE
    ) -> OrchestrationItem:
        """Fetch and return the item of *instance_id* (it must be ready)."""
        items = await p.fetch_orchestrations(100, lease)
        found = [i for i in items if i.instance.instance_id == instance_id]
        assert found, f"{instance_id} not fetched; got {items}"
        for other in items:
            if other is not found[0]:
                await p.abandon_orchestration(
                    other.instance.instance_id, other.lock_token
                )
        return found[0]

    @staticmethod
    async def fetch_map(p: Provider) -> dict[str, OrchestrationItem]:
        """Fetch every ready instance, keyed by instance id."""
        items = await p.fetch_orchestrations(100, LEASE)
        return {item.instance.instance_id: item for item in items}

    @staticmethod
    async def started(p: Provider, instance_id: str, **kw: Any) -> OrchestrationItem:
        """Create *instance_id* and commit its first turn (one event)."""
        await p.create_instance(Kit.new(instance_id, **kw))
        item = await Kit.fetch_one(p, instance_id)
        assert await p.commit_turns([Kit.turn(item, "started")]) == [True]
        return item


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
