"""PostgreSQL verbs of activity routing: the routed fetch, sessions, waiting work.

`PostgresProvider` inherits `PgActivityRouting` (the `RoutesActivities`
verbs, docs/routing.md).

A fetch for a runtime without limits is one statement (`_claim`). With
limits it is a transaction of two: `_lock_limits` locks the
``activity_limits`` row of each limited name that has visible items (in
name order, so two fetches never deadlock), and waits while another fetch
holds it; then `_claim`, whose snapshot is taken once the locks are held,
so it sees every item the previous holders took, counts the items leased
and the recent starts of each locked name and takes at most what the
limits leave. A limited name whose row was not locked is not taken from.

Sessions: `_claim` makes the runtime the owner of the free sessions of the
items it picked (``INSERT ... ON CONFLICT DO UPDATE`` acts on the newest
row version and waits for a concurrent insert, so of two runtimes claiming
a new session at once exactly one wins) and takes an item with a session
only if it owns that session.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg

from perdure.providers._base import ActivityItem, ActivityRouting
from perdure.providers._pg_open import AdaptivePoll
from perdure.providers._pg_schema import quote_ident
from perdure.providers._pg_sql import NOW, SPARE_FOR
from perdure.providers.helpers import LocalWakeups, activity_items

__all__ = ["PgActivityRouting"]

Conn = psycopg.AsyncConnection[Any]


@functools.lru_cache(maxsize=8)
def _lock_limits(s: str) -> str:
    return (
        f"SELECT l.name FROM {s}.activity_limits l"
        " WHERE l.name = ANY(%(l_name)s::text[]) AND EXISTS (SELECT 1"
        f" FROM {s}.activities a WHERE a.name = l.name AND a.visible_at <= {NOW})"
        " ORDER BY l.name FOR UPDATE OF l"
    )


def _ensure_limits(s: str) -> str:
    return (
        f"INSERT INTO {s}.activity_limits (name)"
        " SELECT unnest(%(l_name)s::text[]) ORDER BY 1 ON CONFLICT DO NOTHING"
    )


@functools.lru_cache(maxsize=8)
def _claim(s: str) -> str:
    # routes: each name to look at and how many of it to take (a limited
    # name: what its limits leave). cand: per name, its best visible items
    # this runtime may take (index activities_by_route). top: the best
    # max_items of those. owned: sessions of top this runtime now owns.
    # picked: lock them, skipping rows other fetches hold; FOR UPDATE
    # rechecks visibility on the newest row version. rated: the starts of
    # each rate-limited name, the newest greatest(rate, stored) kept.
    return (
        "WITH lim AS (SELECT * FROM unnest(%(l_name)s::text[], %(l_conc)s::int[],"
        " %(l_rate)s::int[], %(l_per)s::float8[]) AS l(name, conc, rate, per)),"
        " routes AS (SELECT r.name, %(n)s::bigint AS want"
        " FROM unnest(%(names)s::text[]) AS r(name)"
        " UNION ALL SELECT lim.name, least(%(n)s::bigint,"
        # Leased items of the name counted up to the limit only (at the
        # limit the name is full either way): an index-only scan of
        # activities_leased that stops there, not a count of every item of
        # the name in flight (1 ms with 5,000 of them, against 0.05).
        " lim.conc - (SELECT count(*) FROM (SELECT 1"
        f" FROM {s}.activities a WHERE a.name = lim.name"
        f" AND a.lock_token IS NOT NULL AND a.visible_at > {NOW}"
        # (In the index's order, so no plan sorts every item in flight.)
        " ORDER BY a.visible_at DESC LIMIT lim.conc) AS held),"
        f" lim.rate - (SELECT count(*) FROM {s}.activity_limits r,"
        " unnest(r.starts) AS t(at) WHERE r.name = lim.name"
        f" AND t.at > {NOW} - lim.per)) FROM lim),"
        " cand AS (SELECT c.* FROM routes r CROSS JOIN LATERAL"
        " (SELECT a.id, a.priority, a.visible_at, a.session"
        f" FROM {s}.activities a WHERE a.name = r.name AND a.visible_at <= {NOW}"
        " AND (a.tag IS NULL OR a.tag = ANY(%(tags)s::text[]))"
        " AND (a.session IS NULL OR NOT EXISTS (SELECT 1"
        f" FROM {s}.activity_sessions x WHERE x.session = a.session"
        f" AND x.owner <> %(owner)s AND x.expires_at >= {NOW}))"
        " ORDER BY a.priority DESC, a.visible_at, a.id"
        " LIMIT greatest(r.want, 0)) c),"
        " top AS (SELECT * FROM cand ORDER BY priority DESC, visible_at, id"
        " LIMIT %(n)s),"
        f" owned AS (INSERT INTO {s}.activity_sessions AS x (session, owner,"
        f" expires_at) SELECT DISTINCT session, %(owner)s, {NOW} + %(lease)s"
        " FROM top WHERE session IS NOT NULL ON CONFLICT (session) DO UPDATE"
        " SET owner = excluded.owner, expires_at = excluded.expires_at"
        f" WHERE x.owner = excluded.owner OR x.expires_at < {NOW}"
        " RETURNING x.session),"
        f" picked AS (SELECT a.id FROM {s}.activities a"
        f" WHERE a.id IN (SELECT id FROM top) AND a.visible_at <= {NOW}"
        " AND (a.session IS NULL OR a.session IN (SELECT session FROM owned))"
        " ORDER BY a.id FOR UPDATE OF a SKIP LOCKED),"
        f" taken AS (UPDATE {s}.activities a"
        f" SET lock_token = gen_random_uuid()::text, visible_at = {NOW} + %(lease)s,"
        " attempt = a.attempt + 1 FROM picked WHERE a.id = picked.id"
        " RETURNING a.id, a.instance_id, a.execution_id, a.event_id, a.name,"
        " a.body, a.lock_token, a.attempt, a.heartbeat_details, a.session),"
        f" rated AS (UPDATE {s}.activity_limits r SET starts = (SELECT"
        " coalesce(array_agg(u.at ORDER BY u.at), '{}') FROM (SELECT v.at FROM"
        f" unnest(r.starts || array_fill({NOW}, ARRAY[k.n])) AS v(at)"
        " ORDER BY v.at DESC LIMIT greatest(lim.rate, cardinality(r.starts))) u)"
        " FROM (SELECT name, count(*)::int AS n FROM taken GROUP BY name) k"
        " JOIN lim ON lim.name = k.name"
        " WHERE r.name = k.name AND lim.rate IS NOT NULL)"
        " SELECT * FROM taken"
    )


def _renew(s: str) -> str:
    return (
        "WITH mine AS (SELECT unnest(%(sessions)s::text[]) AS session),"
        f" renewed AS (UPDATE {s}.activity_sessions x"
        f" SET expires_at = {NOW} + %(lease)s FROM mine"
        " WHERE x.session = mine.session AND x.owner = %(owner)s"
        " RETURNING x.session)"
        " SELECT session FROM mine WHERE session NOT IN"
        " (SELECT session FROM renewed)"
    )


def _release(s: str) -> str:
    # Leases long expired are nobody's: keep the table small.
    return (
        f"WITH gone AS (DELETE FROM {s}.activity_sessions WHERE owner = %(owner)s"
        f" OR expires_at < {NOW} - 3600 RETURNING owner)"
        " SELECT pg_notify(%(ch_act)s, %(origin)s)"
        " WHERE EXISTS (SELECT 1 FROM gone WHERE owner = %(owner)s)"
    )


def _waiting(s: str) -> str:
    return (
        f"SELECT name, tag, count(*) FROM {s}.activities"
        f" WHERE visible_at <= {NOW} - %(min_wait)s"
        " AND NOT (name = ANY(%(names)s::text[])"
        " AND (tag IS NULL OR tag = ANY(%(tags)s::text[])))"
        " GROUP BY name, tag ORDER BY name, tag"
    )


class PgActivityRouting:
    """The `RoutesActivities` verbs of `PostgresProvider`."""

    # Set by PostgresProvider.
    schema: str
    _wake_params: dict[str, Any]
    _wakeups: LocalWakeups
    _poll: AdaptivePoll | None
    _limit_rows: set[str]

    def clock(self) -> float:
        raise NotImplementedError

    def _connection(self) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError

    async def fetch_routed_activities(
        self, max_items: int, lock_timeout: float, routing: ActivityRouting
    ) -> list[ActivityItem]:
        """See `RoutesActivities.fetch_routed_activities`."""
        if max_items <= 0:
            return []
        s = quote_ident(self.schema)
        limits = {x.name: x for x in routing.limits if x.name in routing.names}
        params: dict[str, Any] = {
            "names": [name for name in routing.names if name not in limits],
            "tags": sorted(routing.tags),
            "owner": routing.owner,
            "n": max_items,
            "lease": lock_timeout,
        }
        async with self._connection() as conn:
            if not limits:
                rows = await _run_claim(conn, s, params, [])
            else:
                async with conn.transaction():
                    names = sorted(limits)
                    if not self._limit_rows.issuperset(names):
                        await conn.execute(_ensure_limits(s), {"l_name": names})
                        self._limit_rows.update(names)
                    cursor = await conn.execute(_lock_limits(s), {"l_name": names})
                    locked = [limits[row[0]] for row in await cursor.fetchall()]
                    rows = await _run_claim(conn, s, params, locked)
        # As in fetch_activities: while this worker has room, our commits
        # wake no other runtime for the activities they schedule.
        self._wake_params["spare_act"] = (
            self.clock() + SPARE_FOR if len(rows) < max_items else 0.0
        )
        if rows and self._poll is not None:
            self._poll.busy("activities")
        return activity_items(rows)

    async def renew_activity_sessions(
        self, owner: str, sessions: Sequence[str], lease: float
    ) -> list[str]:
        """See `RoutesActivities.renew_activity_sessions`."""
        if not sessions:
            return []
        params = {"sessions": list(sessions), "owner": owner, "lease": lease}
        async with self._connection() as conn:
            cursor = await conn.execute(_renew(quote_ident(self.schema)), params)
            return [row[0] for row in await cursor.fetchall()]

    async def release_activity_sessions(self, owner: str) -> None:
        """See `RoutesActivities.release_activity_sessions`."""
        params = {"owner": owner, **self._wake_params}
        async with self._connection() as conn:
            await conn.execute(_release(quote_ident(self.schema)), params)
        self._wakeups.notify("activities")

    async def waiting_activities(
        self, routing: ActivityRouting, min_wait: float
    ) -> list[tuple[str, str | None, int]]:
        """See `RoutesActivities.waiting_activities`."""
        params = {
            "names": list(routing.names),
            "tags": sorted(routing.tags),
            "min_wait": min_wait,
        }
        async with self._connection() as conn:
            cursor = await conn.execute(_waiting(quote_ident(self.schema)), params)
            rows = await cursor.fetchall()
        return [(name, tag, int(count)) for name, tag, count in rows]


async def _run_claim(
    conn: Conn, s: str, params: dict[str, Any], locked: Sequence[Any]
) -> list[Any]:
    """Run `_claim` with the limits of the *locked* names."""
    cursor = await conn.execute(
        _claim(s),
        {
            **params,
            "l_name": [x.name for x in locked],
            # NULL: no such limit (least() ignores it).
            "l_conc": [x.concurrency for x in locked],
            "l_rate": [x.rate for x in locked],
            "l_per": [x.per for x in locked],
        },
        # Prepared from its first call, not psycopg's fifth on each pooled
        # connection: a fetch planned anew cost ~2 ms of server CPU (parse
        # and a custom plan), ten times its execution.
        prepare=True,
    )
    return await cursor.fetchall()
