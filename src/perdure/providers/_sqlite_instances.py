"""SQLite verbs on instance rows: list, page, read history and values, delete, purge.

`SqliteProvider` inherits `SqliteInstances`; listing pages with a keyset
(`perdure.providers._instance_query`), so a page costs the same at any size.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from perdure.providers._base import (
    InstanceBatch,
    InstanceQuery,
    InstanceRecord,
    InstanceStatus,
)
from perdure.providers._instance_query import (
    encode_cursor,
    purge_roots_sql,
    query_sql,
)
from perdure.providers._sqlite_routing import SqliteRouting
from perdure.providers.helpers import INSTANCE_COLUMNS, instance_record

__all__ = ["SqliteInstances"]

_INSTANCE_TREE = (
    "WITH RECURSIVE tree(id) AS ("
    " SELECT instance_id FROM instances WHERE instance_id = ?"
    " UNION SELECT i.instance_id FROM instances i JOIN tree ON"
    " i.parent_instance_id = tree.id)"
    " SELECT id FROM tree"
)


class SqliteInstances(SqliteRouting):
    """Instance-row verbs of `perdure.providers.sqlite.SqliteProvider`."""

    async def list_instances(
        self, *, status: InstanceStatus | None = None, limit: int = 100
    ) -> list[InstanceRecord]:
        """Return instances, newest first, optionally filtered by status."""
        where = "" if status is None else "WHERE status = ?"
        params: tuple[Any, ...] = (limit,) if status is None else (status, limit)
        sql = (
            f"SELECT {INSTANCE_COLUMNS} FROM instances {where}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        )
        rows = await self._call(lambda: self._db().execute(sql, params).fetchall())
        return [instance_record(row) for row in rows]

    async def read_values(self, instance_id: str) -> str | None:
        """See `Provider.read_values`."""
        sql = "SELECT coalesce(state_values, '{}') FROM instances WHERE instance_id = ?"
        row = await self._call(
            lambda: self._db().execute(sql, (instance_id,)).fetchone()
        )
        return None if row is None else str(row[0])

    async def read_history(
        self, instance_id: str, execution_id: int | None = None
    ) -> list[str]:
        """Return the JSON text of each event, in event-id order.

        ``execution_id=None`` reads the instance's current execution; an
        unknown instance has an empty history.
        """
        sql = (
            "SELECT data FROM history WHERE instance_id = ?1 AND execution_id ="
            " coalesce(?2, (SELECT execution_id FROM instances WHERE instance_id = ?1))"
            " ORDER BY event_id"
        )
        params = (instance_id, execution_id)
        rows = await self._call(lambda: self._db().execute(sql, params).fetchall())
        return [row[0] for row in rows]

    async def delete_instance(self, instance_id: str) -> bool:
        """Delete an instance and its sub-orchestrations, recursively.

        Each goes with its history, messages and activity work, in one
        transaction; see `Provider.delete_instance`.

        Returns:
            ``False`` if there was no such instance (nothing is deleted).
        """

        def tx(conn: sqlite3.Connection, now: float) -> bool:
            rows = conn.execute(_INSTANCE_TREE, (instance_id,)).fetchall()
            if not rows:
                return False
            keys = [(row[0],) for row in rows]
            for table in ("history", "messages", "activities", "instances"):
                conn.executemany(f"DELETE FROM {table} WHERE instance_id = ?", keys)
            return True

        found = await self._transaction(tx)
        if found:
            self._wakeups.notify("instances")
        return found

    async def query_instances(self, query: InstanceQuery) -> InstanceBatch:
        """Return one page of the instances matching *query*, newest first.

        Raises:
            ValueError: ``query.cursor`` is not a cursor this provider made.
        """
        sql, params = query_sql(query, INSTANCE_COLUMNS, "instances", "rowid")
        rows = await self._call(lambda: self._db().execute(sql, params).fetchall())
        page = rows[: query.limit]
        more = len(rows) > query.limit
        last = page[-1] if page else None
        return InstanceBatch(
            [instance_record(row) for row in page],
            encode_cursor(last[9], last[-1]) if more and last is not None else None,
        )

    async def purge_instances(
        self,
        *,
        statuses: Sequence[InstanceStatus],
        finished_before: float,
        limit: int,
    ) -> int:
        """Delete up to *limit* finished top-level instances with their children.

        See `Provider.purge_instances`; one transaction.
        """
        sql, params = purge_roots_sql(statuses, "instances")
        params += [finished_before, limit]

        def tx(conn: sqlite3.Connection, now: float) -> int:
            roots = [row[0] for row in conn.execute(sql, params).fetchall()]
            keys: list[tuple[Any, ...]] = []
            for root in roots:
                keys.extend(tuple(row) for row in conn.execute(_INSTANCE_TREE, (root,)))
            for table in ("history", "messages", "activities", "instances"):
                conn.executemany(f"DELETE FROM {table} WHERE instance_id = ?", keys)
            return len(roots)

        deleted = await self._transaction(tx)
        if deleted:
            self._wakeups.notify("instances")
        return deleted
