"""SQLite verbs of deploy safety: routing, resuming, rewinding (DESIGN §9).

`SqliteProvider` inherits them; they live here to keep the provider module
about its core verbs. `takes` applies the handlers of `fetch_orchestrations`
to the rows of the ``READY_INSTANCES`` statement; `handler_params` encodes
them for ``WAITING_INSTANCES``.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable

from perdure.providers._base import Handlers, Message
from perdure.providers._sqlite_conn import SqliteConnection
from perdure.providers._sqlite_schema import (
    INSERT_MESSAGE,
    RESUME_INSTANCE,
    REWIND_INSTANCE,
    WAITING_INSTANCES,
    message_row,
)

__all__ = ["SqliteRouting", "handler_params", "takes"]


def takes(handlers: Handlers | None) -> Callable[[str, str, str], bool]:
    """Whether a ready instance ``(status, name, version)`` is the caller's."""
    if handlers is None:
        return _anything
    return _matcher(tuple(handlers))


def _anything(status: str, name: str, version: str) -> bool:
    return True


@functools.lru_cache(maxsize=16)
def _matcher(handlers: tuple[tuple[str, str], ...]) -> Callable[[str, str, str], bool]:
    pairs = frozenset(handlers)
    names = frozenset(name for name, _ in handlers)

    def match(status: str, name: str, version: str) -> bool:
        # Not Running: fetched by anyone, only to consume late messages.
        if status != "Running" or (name, version) in pairs:
            return True
        return version == "" and name in names

    return match


def handler_params(handlers: Handlers | None) -> tuple[str | None, str | None]:
    """The ``?2`` and ``?3`` parameters matching *handlers* (None: any)."""
    if handlers is None:
        return None, None
    # A runtime passes the same handlers on every fetch: encode them once.
    return _encoded(tuple(handlers))


@functools.lru_cache(maxsize=16)
def _encoded(handlers: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    pairs = json.dumps([f"{name}\x1f{version}" for name, version in handlers])
    names = json.dumps(sorted({name for name, _ in handlers}))
    return pairs, names


class SqliteRouting(SqliteConnection):
    """`Provider.waiting_instances`, ``resume_instance``, ``rewind_instance``."""

    async def waiting_instances(
        self, handlers: Handlers, min_wait: float
    ) -> list[tuple[str, str, int]]:
        """See `Provider.waiting_instances`."""
        pairs, names = handler_params(handlers)

        def tx(conn: sqlite3.Connection, now: float) -> list[tuple[str, str, int]]:
            rows = conn.execute(WAITING_INSTANCES, (now, pairs, names, now - min_wait))
            return [(name, version, count) for name, version, count in rows]

        return await self._transaction(tx)

    async def resume_instance(self, instance_id: str) -> bool:
        """See `Provider.resume_instance`."""

        def tx(conn: sqlite3.Connection, now: float) -> bool:
            return conn.execute(RESUME_INSTANCE, (now, instance_id)).rowcount == 1

        resumed = await self._transaction(tx, ("orchestrations",))
        if resumed:
            self._wakeups.notify("orchestrations", "instances")
        return resumed

    async def rewind_instance(self, instance_id: str, message: Message) -> bool:
        """See `Provider.rewind_instance`."""

        def tx(conn: sqlite3.Connection, now: float) -> bool:
            if conn.execute(REWIND_INSTANCE, (now, instance_id)).rowcount != 1:
                return False
            conn.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))
            conn.execute(INSERT_MESSAGE, message_row(instance_id, message, now))
            return True

        rewound = await self._transaction(tx, ("orchestrations",))
        if rewound:
            self._wakeups.due("orchestrations", message.visible_at)
            self._wakeups.notify("orchestrations", "instances")
        return rewound
