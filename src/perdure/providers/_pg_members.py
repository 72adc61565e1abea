"""The runtimes that fetch from a PostgreSQL schema (table ``runtimes``).

A provider object whose dispatcher fetches orchestrations announces itself
every `BEAT` seconds (one small upsert; piggybacked on its fetches, so a
busy runtime beats too) and leaves when it closes. `CreateInstance` (see
`_pg_sql`) picks a live one as the home of each new instance: its NOTIFY
wakes that runtime only, and the others leave the instance to it for the
provider's ``affinity`` seconds. A runtime that died without leaving is
considered alive for `ALIVE` seconds: starts homed there wait for another
runtime's next fetch (affinity, then its poll), never longer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

__all__ = ["ALIVE", "BEAT", "Membership"]

_log = logging.getLogger("perdure.providers.postgres")

#: Seconds between a runtime's announcements.
BEAT = 5.0
#: Seconds after its last announcement a runtime still counts as alive.
ALIVE = 15.0


class Membership:
    """Announces one provider object as a runtime of its schema."""

    def __init__(
        self,
        schema: str,
        origin: str,
        connection: Callable[[], AbstractAsyncContextManager[Any]],
        now: str,
    ) -> None:
        self._origin = origin
        self._connection = connection
        self._next = 0.0
        self._joined = False
        self._beat_sql = (
            f"INSERT INTO {schema}.runtimes (origin, seen_at) VALUES (%(o)s, {now})"
            " ON CONFLICT (origin) DO UPDATE SET seen_at = excluded.seen_at"
        )
        self._leave_sql = f"DELETE FROM {schema}.runtimes WHERE origin = %(o)s"

    async def beat(self) -> None:
        """Announce this runtime if it is time; never raises (logged)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + BEAT
        try:
            async with self._connection() as conn:
                await conn.execute(self._beat_sql, {"o": self._origin})
            self._joined = True
        except Exception:
            # Only the targeting of new starts suffers: they wake everyone.
            _log.debug("announcing this runtime failed", exc_info=True)

    async def leave(self) -> None:
        """Withdraw this runtime (at close), so no start is homed here."""
        if not self._joined:
            return
        self._joined = False
        with contextlib.suppress(Exception):
            async with self._connection() as conn:
                await conn.execute(self._leave_sql, {"o": self._origin})
