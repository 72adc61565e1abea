"""`WorkerRouting`: how an activity worker fetches by routing (docs/routing.md).

With a provider that implements `RoutesActivities`, the worker fetches
only what its runtime may take: the activity names it registered, the tags
it serves, within the limits it declares, its own sessions and free ones.
It keeps the leases of its sessions alive while it uses them (renewed every
third of ``lock_timeout``, like the item leases; a session unused for
`SESSION_IDLE` seconds is let go), and gives them all back at shutdown, so
another runtime takes the session's next items at once. After a crash the
session leases expire within ``lock_timeout``.

Work that waits because no runtime takes it (a name nobody registered, a
tag nobody serves) is logged once per name and tag, after it has waited
`WAITING_AFTER` seconds.

A provider without `RoutesActivities` gets the old fetch: everything, and
an unregistered name fails its item with ``HandlerNotFound``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ._outage import log_failure
from .providers._base import (
    ActivityItem,
    ActivityRouting,
    Provider,
    RoutesActivities,
)

__all__ = ["SESSION_IDLE", "WAITING_AFTER", "WorkerRouting"]

_log = logging.getLogger("perdure.worker")

#: Seconds a session this worker owns is kept without items to run.
SESSION_IDLE = 300.0
#: Seconds activity work waits before it is reported as taken by no one.
WAITING_AFTER = 60.0


class WorkerRouting:
    """The routed fetch of one worker, and the leases of its sessions."""

    def __init__(
        self, provider: Provider, routing: ActivityRouting | None, lock_timeout: float
    ) -> None:
        self._provider = provider
        self._routing = routing
        self._routes: RoutesActivities | None = None
        if routing is not None and isinstance(provider, RoutesActivities):
            self._routes = provider
        elif routing is not None and (routing.tags or routing.limits):
            _log.warning(
                "%r cannot route activities (it lacks RoutesActivities): "
                "activity tags, limits, sessions and priorities are ignored",
                provider,
            )
        self._lock_timeout = lock_timeout
        # A finished item of a concurrency-limited name frees a slot that
        # no notification announces: fetch again at once, not at the poll.
        limits = routing.limits if routing is not None else ()
        self._limited = frozenset(
            x.name for x in limits if x.concurrency is not None and self._routes
        )
        self._freed = asyncio.Event()
        self._running_limited = 0  # held items of limited names
        # session -> [items held, monotonic time of last use]
        self._sessions: dict[str, list[float]] = {}
        self._owned = False  # whether this worker ever took a session
        self._next_check = time.monotonic() + WAITING_AFTER
        self._reported: set[tuple[str, str | None]] = set()

    async def fetch(self, max_items: int) -> list[ActivityItem]:
        """Lock up to *max_items* items this worker may take."""
        if self._routes is None or self._routing is None:
            return await self._provider.fetch_activities(max_items, self._lock_timeout)
        items = await self._routes.fetch_routed_activities(
            max_items, self._lock_timeout, self._routing
        )
        for item in items:
            if item.name in self._limited:
                self._running_limited += 1
            if item.session is not None:
                self._owned = True
                use = self._sessions.setdefault(item.session, [0, 0.0])
                use[0] += 1
                use[1] = time.monotonic()
        return items

    async def wait_for_work(self, timeout: float) -> None:
        """Wait for new work, or for a limited slot this worker freed."""
        if not self._running_limited:
            # In this task, so that a wake-up since this task's fetch is
            # not missed (the provider remembers it per task).
            await self._provider.wait("activities", timeout)
            return
        if not self._freed.is_set():
            waits = [
                asyncio.ensure_future(self._provider.wait("activities", timeout)),
                asyncio.ensure_future(self._freed.wait()),
            ]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        self._freed.clear()

    def finished(self, item: ActivityItem) -> None:
        """*item*'s attempt is over (its session may go idle, its slot frees)."""
        if item.name in self._limited:
            self._running_limited -= 1
            self._freed.set()
        use = self._sessions.get(item.session) if item.session is not None else None
        if use is not None:
            use[0] = max(use[0] - 1, 0)
            use[1] = time.monotonic()

    async def renew_loop(self) -> None:
        """Renew the leases of the sessions in use, forever."""
        interval = max(self._lock_timeout / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            await self.renew()

    async def renew(self) -> None:
        """Renew the sessions in use once; let idle ones go."""
        if self._routes is None or self._routing is None or not self._sessions:
            return
        idle_since = time.monotonic() - SESSION_IDLE
        for session, (held, used) in list(self._sessions.items()):
            if held <= 0 and used < idle_since:
                del self._sessions[session]
        if not self._sessions:
            return
        try:
            lost = await self._routes.renew_activity_sessions(
                self._routing.owner, list(self._sessions), self._lock_timeout
            )
        except Exception as exc:
            log_failure(_log, exc, "renewing activity session leases failed")
            return
        for session in lost:
            _log.warning(
                "activity session %r is no longer owned by this runtime (its "
                "lease expired); its next activities may run elsewhere",
                session,
            )
            self._sessions.pop(session, None)

    async def close(self) -> None:
        """At shutdown: give every session back (another runtime takes them)."""
        if self._routes is None or self._routing is None or not self._owned:
            return
        self._sessions.clear()
        try:
            async with asyncio.timeout(5.0):
                await self._routes.release_activity_sessions(self._routing.owner)
        except Exception as exc:
            log_failure(
                _log,
                exc,
                "shutdown: giving back activity sessions failed (they "
                "move to another runtime when their leases expire)",
            )

    async def check_waiting(self) -> None:
        """Log, once per name and tag, work this runtime never takes that waits."""
        routing = self._routing
        if self._routes is None or routing is None:
            return
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + WAITING_AFTER
        try:
            waiting = await self._routes.waiting_activities(routing, WAITING_AFTER)
        except Exception:
            _log.debug("counting waiting activities failed", exc_info=True)
            return
        for name, tag, count in waiting:
            if (name, tag) in self._reported:
                continue
            self._reported.add((name, tag))
            why = (
                f"tag {tag!r}, which this runtime does not serve (its "
                f"activity_tags: {', '.join(sorted(routing.tags)) or 'none'})"
                if name in routing.names
                else "a name this runtime did not register"
            )
            _log.warning(
                "%d activity item(s) of %r have waited over %.0f s: %s; they "
                "run when a runtime that takes them starts",
                count,
                name,
                WAITING_AFTER,
                why,
            )
