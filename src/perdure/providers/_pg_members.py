"""The runtimes that fetch from a PostgreSQL schema (table ``runtimes``).

A provider object whose dispatcher fetches orchestrations announces itself
every `BEAT` seconds (one small upsert; piggybacked on its fetches, so a
busy runtime beats too) and leaves when it closes. A start (see
`_pg_sql`) picks a live one as the home of each new instance: its NOTIFY
wakes that runtime only, and the others leave the instance to it for the
provider's ``affinity`` seconds. A runtime that died without leaving is
considered alive for `ALIVE` seconds: starts homed there wait for another
runtime's next fetch (affinity, then its poll), never longer.

Homes are packed, not spread: a busy runtime that keeps up, else an idle
one, else one that is behind; among equals always the same one (the md5 of
its name). Spread evenly, a load that one runtime carries became a trickle
on each of K runtimes: none was busy enough to batch, each committed and
fetched for every few turns, and on shared cores three runtimes ran the
chain benchmark at 45 % of one. Packed, the first runtime takes the load
and batches it; when its fetches find work that waited longer than `LATE`
it marks its row ``behind`` and new starts go to the next runtime, until it
is below `CAUGHT_UP` again or goes idle (`Membership.pace`). So extra
runtimes cost nothing until the load needs them.

Busy runtimes are not notified. PostgreSQL makes every LISTENing backend
of the database read every notification in a transaction of its own,
whatever the channel, so with K runtimes each start cost K transactions
beyond its own (issue 17). A runtime whose fetch found work marks its row
``idle = false`` in that fetch; while so marked it fetches again within
`BUSY_POLL` seconds of an empty fetch, `BUSY_POLLS` times, and only then
sets ``idle = true`` (committed) and fetches once more before it sleeps.
A start reads its home's row ``FOR SHARE``: if the runtime's update to idle
is first, the start sees ``idle`` and notifies; if the start is first, the
update waits for it to commit, so the last fetch sees the new instance.
Either way no start is left unseen by a sleeping home.

Waiting clients register the same way (table ``waiters``, `Membership.watch`):
a turn that ends an instance notifies the "instances" channel only while
some client's registration is current (`WATCH` seconds, renewed by its
waits), so a system nobody is waiting on sends no such notification. A
finish that races a first registration is seen by the client's next look
(its waits are bounded: `perdure.Client.wait_for_orchestration` polls with
a pause of at most 0.1 s).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

__all__ = [
    "ALIVE",
    "BEAT",
    "BUSY_BEAT",
    "BUSY_POLL",
    "BUSY_POLLS",
    "CAUGHT_UP",
    "FRESH",
    "LATE",
    "WATCH",
    "Membership",
]

_log = logging.getLogger("perdure.providers.postgres")

#: Seconds between a runtime's announcements ...
BEAT = 5.0
#: ... while it is busy: a busy runtime not heard from for `FRESH` seconds
#: counts as behind (it may have died), so starts stop going to it.
BUSY_BEAT = 1.0
FRESH = 3.0
#: Seconds after its last announcement a runtime still counts as alive.
ALIVE = 15.0
#: Seconds a busy runtime waits after an empty fetch before it looks again.
BUSY_POLL = 0.002
#: Empty fetches in a row after which a busy runtime goes idle.
BUSY_POLLS = 3
#: Seconds a waiting client's registration lasts; renewed at half-time.
WATCH = 30.0
#: Seconds the oldest work a fetch finds may have waited before this
#: runtime counts as behind (new starts go to another runtime) ...
LATE = 0.2
#: ... and below which it has caught up again (they come back).
CAUGHT_UP = 0.05


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
        self._watch_sql = (
            f"INSERT INTO {schema}.waiters (origin, until) VALUES (%(o)s,"
            f" {now} + {WATCH}) ON CONFLICT (origin) DO UPDATE"
            " SET until = excluded.until"
        )
        self._unwatch_sql = f"DELETE FROM {schema}.waiters WHERE origin = %(o)s"
        self._watched_until = 0.0  # monotonic time to renew by
        self._idle_sql = (
            f"UPDATE {schema}.runtimes SET idle = true, behind = false"
            " WHERE origin = %(o)s"
        )
        self._behind_sql = (
            f"UPDATE {schema}.runtimes SET behind = %(b)s WHERE origin = %(o)s"
        )
        self._behind = False  # what the row says, as far as we know
        # What the row says as far as we know: True (idle: starts notify
        # us), False (busy: they do not), None (unknown after a failed
        # fetch: treated as busy, so the flag is set before we sleep).
        self._idle: bool | None = True
        self._empty = 0  # empty fetches in a row while busy
        self._marking = False

    def fetch_param(self, listening: bool) -> bool:
        """The fetch's ``busy`` parameter: mark the row busy if it finds work.

        Only a runtime that hears notifications takes part; one that polls
        (behind a pooler) leaves the flag idle, so starts keep notifying.
        """
        self._marking = listening and self._idle is not False
        return self._marking

    def fetched(self, found: bool | None) -> None:
        """After a fetch: whether it found work (None: it failed)."""
        if found is None:
            if self._marking:
                self._idle = None  # the update may have committed
            return
        if found:
            self._empty = 0
            if self._marking and self._idle is not False:
                # Its fetch marked it busy and announced it: the next
                # announcement is due in BUSY_BEAT (FRESH counts from here).
                self._next = time.monotonic() + BUSY_BEAT
            if self._marking:
                self._idle = False

    async def before_sleep(self) -> float | None:
        """Called before an idle wait; returns a shorter wait, if any.

        Busy: `BUSY_POLL` for the first `BUSY_POLLS` empty fetches, then the
        row is marked idle and 0.0 returned (look once more, then sleep).
        Idle: None (sleep as asked).
        """
        if self._idle is True:
            return None
        self._empty += 1
        if self._empty <= BUSY_POLLS:
            return BUSY_POLL
        try:
            async with self._connection() as conn:
                await conn.execute(self._idle_sql, {"o": self._origin})
        except Exception:
            _log.debug("marking this runtime idle failed", exc_info=True)
            return BUSY_POLL  # still busy as far as anyone knows
        self._idle = True
        self._behind = False
        self._empty = 0
        return 0.0

    async def pace(self, waited: float) -> None:
        """After a fetch that found work whose oldest had *waited* seconds.

        Marks the row behind past `LATE` and keeping up again below
        `CAUGHT_UP` (one small update per change; the gap between the two
        keeps a runtime near the limit from flapping). Never raises: if the
        update fails, the next fetch tries again.
        """
        behind = (
            True if waited > LATE else False if waited < CAUGHT_UP else self._behind
        )
        if behind == self._behind or not self._joined:
            return
        try:
            async with self._connection() as conn:
                await conn.execute(self._behind_sql, {"o": self._origin, "b": behind})
        except Exception:
            _log.debug("marking this runtime behind failed", exc_info=True)
            return
        self._behind = behind

    async def beat(self) -> None:
        """Announce this runtime if it is time; never raises (logged)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + (BUSY_BEAT if self._idle is False else BEAT)
        try:
            async with self._connection() as conn:
                await conn.execute(self._beat_sql, {"o": self._origin})
            self._joined = True
        except Exception:
            # Only the targeting of new starts suffers: they wake everyone.
            _log.debug("announcing this runtime failed", exc_info=True)

    async def watch(self) -> None:
        """Register (or renew) this object as a client waiting for instances."""
        now = time.monotonic()
        if now < self._watched_until:
            return
        try:
            async with self._connection() as conn:
                await conn.execute(self._watch_sql, {"o": self._origin})
        except Exception:
            # Its waits still poll; only their latency suffers.
            _log.debug("registering a waiting client failed", exc_info=True)
            return
        self._watched_until = now + WATCH / 2

    async def leave(self) -> None:
        """Withdraw this runtime and waiter (at close)."""
        statements = []
        if self._joined:
            statements.append(self._leave_sql)
        if self._watched_until:
            statements.append(self._unwatch_sql)
        self._joined = False
        self._watched_until = 0.0
        if not statements:
            return
        with contextlib.suppress(Exception):
            async with self._connection() as conn:
                for sql in statements:
                    await conn.execute(sql, {"o": self._origin})
