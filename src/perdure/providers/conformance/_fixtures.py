"""The conformance suite's fixtures and builders.

The suite needs one fixture from its user, ``backend``, returning a
`Backend`; ``provider``, ``run`` and ``kit`` are built on it. Tests are
plain functions: they hand an ``async def body(p)`` to the ``run`` fixture,
which opens a fresh provider, awaits the body and closes it, all in one
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from perdure.providers import (
    Message,
    NewInstance,
    OrchestrationItem,
    Provider,
    TurnCommit,
)

T = TypeVar("T")
Body = Callable[[Provider], Awaitable[T]]
Run = Callable[[Body[Any]], Any]

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


@pytest.fixture
def provider(backend: Backend) -> Provider:
    """A new, unopened provider on the test's storage."""
    return backend.make()


@pytest.fixture
def run(provider: Provider, request: pytest.FixtureRequest) -> Run:
    """Open the test's provider, await ``body(provider)``, close it.

    A warning logged under ``perdure`` fails the test unless the test is
    marked ``storage_warnings``: on the normal path a provider has nothing
    to warn about, and a silent fallback (a batch retried item by item, a
    result recorded as unwritable) is a bug that results alone do not show.
    """
    allowed = request.node.get_closest_marker("storage_warnings") is not None

    def runner(body: Body[T]) -> T:
        async def main() -> T:
            await provider.open()
            try:
                return await body(provider)
            finally:
                await provider.close()

        with _Warnings() as seen:
            result = asyncio.run(main())
        if seen.records and not allowed:
            lines = "\n".join(r.getMessage() for r in seen.records)
            pytest.fail(f"the provider logged unexpected warnings:\n{lines}")
        return result

    return runner


class _Warnings(logging.Handler):
    """Collects WARNING and above from the ``perdure`` loggers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> _Warnings:
        logging.getLogger("perdure").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("perdure").removeHandler(self)


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
    """The `Kit` builders."""
    return Kit
