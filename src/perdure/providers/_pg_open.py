"""Opening the PostgreSQL provider: migrate, detect a pooler, pool, wake-ups.

Wake-ups across processes come from ``LISTEN`` on a dedicated connection.
Behind a transaction-mode pooler a ``LISTEN`` session does not survive (the
pooler hands the server connection to someone else after each
transaction), so there the listener connects to ``listen_url`` (a direct
connection to PostgreSQL) when one is given, and otherwise the provider
polls with a short adaptive interval (`AdaptivePoll`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from perdure.providers._base import Channel
from perdure.providers._pg_conn import PgSettings, detect_pooler
from perdure.providers._pg_listen import Listener
from perdure.providers._pg_schema import measure_skew, migrate

__all__ = ["AdaptivePoll", "Opened", "open_sessions"]

_log = logging.getLogger("perdure.providers.postgres")

Conn = psycopg.AsyncConnection[Any]


@dataclass(slots=True)
class Opened:
    """What `open_sessions` set up."""

    pool: AsyncConnectionPool[Conn]
    listener: Listener | None
    skew: float
    settings: PgSettings


async def open_sessions(
    conninfo: str,
    schema: str,
    settings: PgSettings,
    *,
    pooler: bool | None,
    listen_url: str | None,
    pool_size: tuple[int, int],
    channels: dict[Channel, str],
    origin: str,
    on_notify: Callable[[Channel], None],
) -> Opened:
    """Migrate, then open the pool and (when it can work) the listener.

    Args:
        conninfo: libpq URL or ``key=value`` string (schema removed).
        schema: The provider's schema.
        settings: Session settings; ``pooled`` is filled in here.
        pooler: ``None`` detects a pooler, a bool says.
        listen_url: A direct connection for ``LISTEN`` (pooler setups).
        pool_size: ``(min_size, max_size)`` of the pool.
        channels: NOTIFY channel of each wake-up kind.
        origin: Payload of our own notifications.
        on_notify: Called with the woken kind.

    Raises:
        psycopg.Error: The database cannot be reached or migrated.
    """
    # No session limits while migrating: several processes starting at once
    # wait for one another on an advisory lock, which lock_timeout would cut.
    setup = dataclasses.replace(settings, pooled=True)
    async with await psycopg.AsyncConnection.connect(
        conninfo, **setup.connect_kwargs(conninfo)
    ) as conn:
        pooled = await detect_pooler(conn) if pooler is None else pooler
        await migrate(conn, schema)
        skew = await measure_skew(conn)
    settings = dataclasses.replace(settings, pooled=pooled)
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        conninfo,
        min_size=pool_size[0],
        max_size=pool_size[1],
        kwargs=settings.connect_kwargs(conninfo),
        open=False,
        name=f"perdure-{schema}",
    )
    await pool.open(wait=True, timeout=30.0)
    listener = None
    target = listen_url if listen_url is not None else None if pooled else conninfo
    if target is not None:
        kwargs = dataclasses.replace(settings, pooled=False).connect_kwargs(
            target, role="listen"
        )
        listener = Listener(target, channels, origin, on_notify, kwargs)
        try:
            await listener.start()
        except BaseException:
            await pool.close()
            raise
    elif pooled:
        _log.info(
            "a connection pooler is in between: no LISTEN; polling for work"
            " of other processes (give listen_url= for prompt wake-ups)"
        )
    return Opened(pool, listener, skew, settings)


class AdaptivePoll:
    """Caps waits when no ``LISTEN`` connection brings other processes' wake-ups.

    The cap starts at `FLOOR` after work was seen on a channel and doubles
    with each idle wait up to `CEILING`, so an idle runtime notices work
    started elsewhere within `CEILING` seconds (half of it on average) and
    a busy one at once, for a few cheap fetches a second.
    """

    FLOOR = 0.02
    CEILING = 0.2

    def __init__(self) -> None:
        self._cap: dict[Channel, float] = {}

    def cap(self, channel: Channel, timeout: float) -> float:
        """The timeout to wait on *channel* for now."""
        cap = self._cap.get(channel, self.FLOOR)
        self._cap[channel] = min(cap * 2, self.CEILING)
        return min(timeout, cap)

    def busy(self, channel: Channel) -> None:
        """Work was found on *channel*: poll it quickly again."""
        self._cap[channel] = self.FLOOR
