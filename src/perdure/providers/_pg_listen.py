"""LISTEN/NOTIFY wake-ups across processes for the PostgreSQL provider."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from perdure.providers._base import Channel

__all__ = ["Listener"]

_log = logging.getLogger("perdure.providers.postgres")

_ALL: tuple[Channel, ...] = ("orchestrations", "activities", "instances")


class Listener:
    """A dedicated autocommit connection that LISTENs on the provider's channels.

    Each notification from another provider object (its payload is the
    sender's origin id, then for a targeted one ``:`` and the origin of the
    provider object it is meant for; our own writes already woke local
    waiters directly) calls ``on_notify(channel)``. If the connection
    drops, it reconnects with backoff and then reports every channel once,
    since notifications
    sent meanwhile are lost; callers poll with a timeout anyway.

    Args:
        conninfo: libpq connection string or URL.
        channels: NOTIFY channel name of each wake-up kind.
        origin: Payload of our own notifications (ignored).
        on_notify: Called on the event loop with the woken kind.
        connect_kwargs: Keyword arguments of each connect (autocommit,
            ``application_name``, ...).
    """

    def __init__(
        self,
        conninfo: str,
        channels: dict[Channel, str],
        origin: str,
        on_notify: Callable[[Channel], None],
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._kwargs = connect_kwargs or {"autocommit": True}
        self._kinds = {name: kind for kind, name in channels.items()}
        self._origin = origin
        self._on_notify = on_notify
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and LISTEN (errors propagate), then consume in the background."""
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._run(), name="perdure-pg-listener")

    async def stop(self) -> None:
        """Stop consuming and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)
        try:
            for name in self._kinds:
                quoted = '"' + name.replace('"', '""') + '"'
                await conn.execute(f"LISTEN {quoted}")
        except BaseException:
            await conn.close()
            raise
        return conn

    def _for_us(self, payload: str) -> bool:
        # "sender" or "sender:target" (see _pg_sql._wake): our own writes
        # woke local waiters already; a targeted one is for its target only
        # (an empty target: anyone).
        sender, _, target = payload.partition(":")
        return sender != self._origin and target in ("", self._origin)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            conn = self._conn
            try:
                if conn is None:
                    conn = self._conn = await self._connect()
                    # Whatever was notified while we were away is lost.
                    for kind in _ALL:
                        self._on_notify(kind)
                    delay = 0.1
                async for note in conn.notifies():
                    woken = self._kinds.get(note.channel)
                    if woken is not None and self._for_us(note.payload):
                        self._on_notify(woken)
                raise psycopg.OperationalError("the notification stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("LISTEN connection lost (%s); reconnecting", exc)
                self._conn = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
