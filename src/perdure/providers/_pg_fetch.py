"""Fetching orchestration work on PostgreSQL: rows of one statement, by name."""

from __future__ import annotations

from typing import Any

import psycopg

from perdure.providers._base import OrchestrationItem, QueuedMessage
from perdure.providers._pg_sql import PgSql, queued_messages
from perdure.providers.helpers import instance_record

__all__ = ["fetch_orchestrations"]

Conn = psycopg.AsyncConnection[Any]


async def fetch_orchestrations(
    conn: Conn, sql: PgSql, params: dict[str, Any]
) -> tuple[list[OrchestrationItem], float | None, float]:
    """Lock instances with `PgSql.fetch_orchestrations`.

    Returns:
        The items, in the order of their oldest due message; the database
        clock the statement read (``None`` when nothing was locked), from
        which the caller refreshes its clock estimate; and how long the
        oldest due message had waited, in seconds (0 when nothing was
        locked), which tells whether this runtime keeps up.
    """
    # Prepared from its first call (planned once: _pg_conn._GENERIC_PLANS).
    cursor = await conn.execute(sql.fetch_orchestrations, params, prepare=True)
    rows = await cursor.fetchall()
    if not rows:
        return [], None, 0.0
    # Each row: INSTANCE_COLUMNS, then the columns named below (see
    # _pg_sql._fetch_orchestrations); "fresh" is false when the messages
    # must be re-read under the lock.
    locked = []
    db_now = 0.0
    oldest = float("inf")
    for row in rows:
        (
            *_,
            history_len,
            lock_token,
            attempt,
            due,
            _first_id,
            fresh,
            ids,
            kinds,
            bodies,
            occurred,
            db_now,
        ) = row
        instance = instance_record(row)
        oldest = min(oldest, due)
        queued = queued_messages(ids, kinds, bodies, occurred) if fresh else None
        locked.append((instance, history_len, lock_token, attempt, queued))
    stale = [lock[0].instance_id for lock in locked if lock[4] is None]
    reread = await _reread(conn, sql, stale) if stale else {}
    items: list[OrchestrationItem] = []
    for instance, history_len, lock_token, attempt, queued in locked:
        messages = queued
        if messages is None:
            messages = reread.get(instance.instance_id, [])
            if not messages:
                # A turn consumed everything just before we locked.
                await conn.execute(
                    sql.unfetch, {"iid": instance.instance_id, "token": lock_token}
                )
                continue
        items.append(
            OrchestrationItem(
                instance=instance,
                messages=messages,
                history_len=history_len,
                lock_token=lock_token,
                attempt=attempt,
            )
        )
    return items, db_now, max(db_now - oldest, 0.0)


async def _reread(
    conn: Conn, sql: PgSql, instance_ids: list[str]
) -> dict[str, list[QueuedMessage]]:
    """Messages of instances we hold, read with a fresh snapshot."""
    cursor = await conn.execute(sql.reread_messages, {"iids": instance_ids})
    return {
        instance_id: queued_messages(ids, kinds, bodies, occurred)
        for instance_id, ids, kinds, bodies, occurred in await cursor.fetchall()
    }
