"""LISTEN/NOTIFY wake-ups across processes for the PostgreSQL provider."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from perdure.providers._base import Channel

__all__ = ["Listener", "private_channel"]

_log = logging.getLogger("perdure.providers.postgres")

_ALL: tuple[Channel, ...] = ("orchestrations", "activities", "instances")


#: Notification channel of targeted orchestration wake-ups for one provider
#: object (see `_pg_wake.wake`): only its own LISTEN connection hears them.
def private_channel(origin: str) -> str:
    """The channel a provider object with this origin id hears alone."""
    return f"perdure:{origin}"


# How long one wait for notifications lasts before channels wanted since
# are listened to (`Listener.want`).
_TURN = 0.25


class Listener:
    """A dedicated autocommit connection that LISTENs on the provider's channels.

    Each notification from another provider object (its payload is the
    sender's origin id, then for a targeted one ``:`` and the origin of the
    provider object it is meant for; our own writes already woke local
    waiters directly) calls ``on_notify(channel)``. If the connection
    drops, it reconnects with backoff and then reports every channel once,
    since notifications sent meanwhile are lost; callers poll with a
    timeout anyway.

    A shared channel is listened to only once something here waits on its
    kind (`listen`): every notification costs each backend that LISTENs on
    its channel a transaction, so a client that only waits for instances to
    finish must not hear every turn's wake-ups, nor a runtime every status
    change. Targeted orchestration wake-ups come on a channel of this
    provider object's own (`private_channel`), heard by no other backend.

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
        self._channels = channels
        self._private = private_channel(origin)
        self._kinds: dict[str, Channel] = {self._private: "orchestrations"}
        self._listening: set[str] = set()
        self._origin = origin
        self._on_notify = on_notify
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        # The loop's current wait for notifications (`listen` cuts it short).
        self._turn: asyncio.Task[None] | None = None
        # Set each time the loop has sent the LISTENs wanted so far.
        self._applied = asyncio.Event()

    def hears(self, kind: Channel) -> bool:
        """Whether *kind*'s shared channel is listened to."""
        return self._channels[kind] in self._listening

    async def listen(self, kind: Channel) -> None:
        """Hear *kind*'s shared channel from now on; wait until it is heard.

        The loop's current wait for notifications is cut short so that the
        ``LISTEN`` is sent at once: a client's first wait for an instance
        used to sit out the rest of a `_TURN` (up to 0.25 s) although the
        instance had finished in 20 ms. Gives up silently after a few turns
        (a lost connection: the reconnect listens to it).
        """
        channel = self._channels[kind]
        self._kinds.setdefault(channel, kind)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(4 * _TURN):
                while True:
                    self._applied.clear()
                    if channel in self._listening or self._task is None:
                        return
                    if self._turn is not None:
                        self._turn.cancel()  # the loop LISTENs, then waits again
                    await self._applied.wait()

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
        self._listening = set()
        try:
            await self._listen(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        for name in list(self._kinds):
            if name not in self._listening:
                quoted = '"' + name.replace('"', '""') + '"'
                await conn.execute(f"LISTEN {quoted}")
                self._listening.add(name)
        self._applied.set()

    async def _wait_turn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Hand on the notifications that come within one `_TURN`."""
        async for note in conn.notifies(timeout=_TURN):
            woken = self._kinds.get(note.channel)
            if woken is not None and self._for_us(note.payload):
                self._on_notify(woken)

    async def _one_turn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """One `_wait_turn`, ended early (not as an error) by `listen`."""
        if len(self._listening) < len(self._kinds):
            return  # wanted while the last LISTENs were sent: send it first
        turn = self._turn = asyncio.create_task(self._wait_turn(conn))
        try:
            await asyncio.wait({turn})
        finally:
            self._turn = None
            if not turn.done():  # this task itself was cancelled (stop)
                turn.cancel()
                await asyncio.wait({turn})
        if not turn.cancelled():
            turn.result()  # a lost connection: raised here

    def _for_us(self, payload: str) -> bool:
        # "sender" or "sender:target" (see _pg_wake.wake): our own writes
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
                while True:
                    if len(self._listening) < len(self._kinds):
                        await self._listen(conn)
                    # Cancelling psycopg's wait for notifications is safe:
                    # no query is in flight, nothing half-read is dropped.
                    await self._one_turn(conn)
                    if conn.closed:
                        raise psycopg.OperationalError("the connection closed")
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
