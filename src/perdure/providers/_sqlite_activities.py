"""SQLite verbs of activity routing: the routed fetch, sessions, waiting work.

`SqliteProvider` inherits `SqliteActivityRouting` (the `RoutesActivities`
verbs, docs/routing.md). A write transaction (``BEGIN IMMEDIATE``) holds the
database's one write lock, across processes too, so a routed fetch reads
counts and takes items with no other fetch in between: limits need no
further locking here.

The fetch looks at one registered name at a time (`CANDIDATES`, on the
``activities_by_route`` index), so queued items of names this runtime lacks
cost it nothing, and a limited name is only asked for what its limits
leave (`budget`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from perdure.providers._base import ActivityItem, ActivityLimit, ActivityRouting
from perdure.providers._sqlite_conn import SqliteConnection
from perdure.providers.helpers import activity_items

__all__ = ["SqliteActivityRouting", "budget", "claim"]

# Visible items of one name (?1) this runtime may take: untagged or with a
# tag it serves (?3, JSON list), without a session or in a session no other
# owner (?4) holds a live lease on; highest priority first, then oldest.
CANDIDATES = (
    "SELECT a.id, a.priority, a.visible_at, a.session FROM activities AS a"
    " WHERE a.name = ?1 AND a.visible_at <= ?2"
    " AND (a.tag IS NULL OR a.tag IN (SELECT value FROM json_each(?3)))"
    " AND (a.session IS NULL OR NOT EXISTS (SELECT 1 FROM activity_sessions"
    " AS s WHERE s.session = a.session AND s.owner != ?4 AND s.expires_at >= ?2))"
    " ORDER BY a.priority DESC, a.visible_at, a.id LIMIT ?5"
)
LOCK_IDS = (
    "UPDATE activities SET lock_token = lower(hex(randomblob(16))),"
    " visible_at = ?1, attempt = attempt + 1"
    " WHERE id IN (SELECT value FROM json_each(?2))"
    " RETURNING id, instance_id, execution_id, event_id, name, body,"
    " lock_token, attempt, heartbeat_details, session"
)
# Leased now (an expired lease no longer counts: its item is fetchable).
LEASED = (
    "SELECT count(*) FROM activities"
    " WHERE name = ? AND lock_token IS NOT NULL AND visible_at > ?"
)
OWN_SESSION = (
    "INSERT INTO activity_sessions (session, owner, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (session) DO UPDATE SET owner = excluded.owner,"
    " expires_at = excluded.expires_at"
)
WAITING = (
    "SELECT name, tag, count(*) FROM activities WHERE visible_at <= ?1"
    " AND NOT (name IN (SELECT value FROM json_each(?2))"
    " AND (tag IS NULL OR tag IN (SELECT value FROM json_each(?3))))"
    " GROUP BY name, tag ORDER BY name, tag"
)


def _starts(conn: sqlite3.Connection, name: str) -> list[float]:
    row = conn.execute(
        "SELECT starts FROM activity_limits WHERE name = ?", (name,)
    ).fetchone()
    return [float(t) for t in json.loads(row[0])] if row is not None else []


def budget(conn: sqlite3.Connection, now: float, limit: ActivityLimit) -> int:
    """How many more items of *limit*'s name may start now (may be < 0)."""
    left = 1 << 30
    if limit.concurrency is not None:
        (leased,) = conn.execute(LEASED, (limit.name, now)).fetchone()
        left = limit.concurrency - leased
    if limit.rate is not None:
        recent = sum(1 for t in _starts(conn, limit.name) if t > now - limit.per)
        left = min(left, limit.rate - recent)
    return left


def _record_starts(
    conn: sqlite3.Connection, now: float, limit: ActivityLimit, count: int
) -> None:
    """Append *count* starts at *now*, keeping the newest ``rate`` (or more)."""
    assert limit.rate is not None
    starts = _starts(conn, limit.name)
    keep = max(limit.rate, len(starts))
    starts = (starts + [now] * count)[-keep:]
    conn.execute(
        "INSERT INTO activity_limits (name, starts) VALUES (?1, ?2)"
        " ON CONFLICT (name) DO UPDATE SET starts = ?2",
        (limit.name, json.dumps(starts)),
    )


def claim(
    conn: sqlite3.Connection,
    now: float,
    max_items: int,
    lock_timeout: float,
    routing: ActivityRouting,
) -> list[Any]:
    """Take up to *max_items* items *routing* may take (see `RoutesActivities`)."""
    limits = {limit.name: limit for limit in routing.limits}
    tags = json.dumps(sorted(routing.tags))
    found: list[Any] = []
    for name in routing.names:
        want = max_items
        limit = limits.get(name)
        if limit is not None:
            want = min(want, budget(conn, now, limit))
        if want > 0:
            found += conn.execute(
                CANDIDATES, (name, now, tags, routing.owner, want)
            ).fetchall()
    if not found:
        return []
    found.sort(key=lambda row: (-row[1], row[2], row[0]))
    chosen = found[:max_items]
    sessions = {row[3] for row in chosen if row[3] is not None}
    for session in sorted(sessions):
        conn.execute(OWN_SESSION, (session, routing.owner, now + lock_timeout))
    rows = conn.execute(
        LOCK_IDS, (now + lock_timeout, json.dumps([row[0] for row in chosen]))
    ).fetchall()
    for limit in routing.limits:
        if limit.rate is not None:
            taken = sum(1 for row in rows if row[4] == limit.name)
            if taken:
                _record_starts(conn, now, limit, taken)
    return rows


class SqliteActivityRouting(SqliteConnection):
    """The `RoutesActivities` verbs of `SqliteProvider`."""

    async def fetch_routed_activities(
        self, max_items: int, lock_timeout: float, routing: ActivityRouting
    ) -> list[ActivityItem]:
        """See `RoutesActivities.fetch_routed_activities`."""
        if max_items <= 0:
            return []

        def tx(conn: sqlite3.Connection, now: float) -> list[Any]:
            return claim(conn, now, max_items, lock_timeout, routing)

        return activity_items(await self._transaction(tx))

    async def renew_activity_sessions(
        self, owner: str, sessions: Sequence[str], lease: float
    ) -> list[str]:
        """See `RoutesActivities.renew_activity_sessions`."""
        if not sessions:
            return []

        def tx(conn: sqlite3.Connection, now: float) -> list[str]:
            lost: list[str] = []
            for session in sessions:
                renewed = conn.execute(
                    "UPDATE activity_sessions SET expires_at = ?"
                    " WHERE session = ? AND owner = ?",
                    (now + lease, session, owner),
                )
                if renewed.rowcount != 1:
                    lost.append(session)
            return lost

        return await self._transaction(tx)

    async def release_activity_sessions(self, owner: str) -> None:
        """See `RoutesActivities.release_activity_sessions`."""

        def tx(conn: sqlite3.Connection, now: float) -> None:
            conn.execute("DELETE FROM activity_sessions WHERE owner = ?", (owner,))
            # Leases long expired are nobody's: keep the table small.
            conn.execute(
                "DELETE FROM activity_sessions WHERE expires_at < ?", (now - 3600.0,)
            )

        await self._transaction(tx, ("activities",))

    async def waiting_activities(
        self, routing: ActivityRouting, min_wait: float
    ) -> list[tuple[str, str | None, int]]:
        """See `RoutesActivities.waiting_activities`."""
        names = json.dumps(list(routing.names))
        tags = json.dumps(sorted(routing.tags))

        def tx(conn: sqlite3.Connection, now: float) -> list[Any]:
            return conn.execute(WAITING, (now - min_wait, names, tags)).fetchall()

        rows = await self._transaction(tx)
        return [(name, tag, int(count)) for name, tag, count in rows]
