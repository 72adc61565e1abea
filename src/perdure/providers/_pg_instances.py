"""PostgreSQL verbs on instance rows: read, list, page, purge, route, resume, rewind.

`PostgresProvider` inherits `PgInstances` (version routing, resuming and
rewinding are DESIGN §9); `handler_params` gives the
parameters of `perdure.providers._pg_sql.HANDLED`, the condition the fetch
statement and `waiting_instances` share.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg

from perdure.providers import _pg_raw as raw
from perdure.providers._base import (
    Handlers,
    InstanceBatch,
    InstanceQuery,
    InstanceRecord,
    InstanceStatus,
    Message,
)
from perdure.providers._instance_query import (
    encode_cursor,
    purge_roots_sql,
    query_sql,
)
from perdure.providers._pg_schema import quote_ident
from perdure.providers._pg_sql import HANDLED, PgSql, message_params
from perdure.providers._pg_wake import NOW, wake as wake_cte
from perdure.providers.helpers import INSTANCE_COLUMNS, LocalWakeups, instance_record

__all__ = ["PgInstances", "handler_params"]

Conn = psycopg.AsyncConnection[Any]


def handler_params(handlers: Handlers | None) -> dict[str, Any]:
    """Parameters of `HANDLED` (``h_any`` true: no routing)."""
    if handlers is None:
        return {"h_any": True, "h_names": [], "h_versions": []}
    return {
        "h_any": False,
        "h_names": [name for name, _ in handlers],
        "h_versions": [version for _, version in handlers],
    }


def _waiting(s: str) -> str:
    return (
        f"SELECT i.name, i.version, count(*) FROM {s}.instances i"
        f" WHERE i.status = 'Running' AND (i.locked_until IS NULL OR"
        f" i.locked_until < {NOW}) AND NOT {HANDLED}"
        f" AND EXISTS (SELECT 1 FROM {s}.messages m WHERE m.instance_id ="
        f" i.instance_id AND m.visible_at <= {NOW} - %(min_wait)s)"
        " GROUP BY i.name, i.version ORDER BY i.name, i.version"
    )


def _resume(s: str) -> str:
    return (
        f"WITH resumed AS (UPDATE {s}.instances SET status = 'Running',"
        f" error = NULL, attempt = 0, updated_at = {NOW}"
        " WHERE instance_id = %(iid)s AND status = 'Suspended'"
        " RETURNING instance_id), "
        + wake_cte(
            ("ch_orch", "EXISTS (SELECT 1 FROM resumed)"),
            ("ch_inst", "EXISTS (SELECT 1 FROM resumed)"),
        )
        + " SELECT (SELECT count(*) FROM resumed), (SELECT count(*) FROM wake)"
    )


def _rewind(s: str) -> str:
    # One statement: the guarded status change (releasing a lock held by a
    # turn in flight, which its commit then finds gone), the activity work
    # deleted and the rewind message enqueued only if it changed a row.
    return (
        f"WITH rewound AS (UPDATE {s}.instances SET status = 'Running',"
        " error = NULL, output = NULL, attempt = 0, lock_token = NULL,"
        f" locked_until = NULL, owner = NULL, updated_at = {NOW}"
        " WHERE instance_id = %(iid)s AND status = 'Failed'"
        " RETURNING instance_id),"
        f" dropped AS (DELETE FROM {s}.activities WHERE instance_id IN"
        " (SELECT instance_id FROM rewound)),"
        f" sent AS (INSERT INTO {s}.messages (instance_id, kind, body, visible_at,"
        " key, occurred_at) SELECT instance_id, %(kind)s, %(body)s,"
        f" coalesce(%(vis)s, {NOW}), %(key)s, coalesce(%(vis)s, {NOW})"
        " FROM rewound RETURNING visible_at), "
        + wake_cte(
            ("ch_orch", f"EXISTS (SELECT 1 FROM sent WHERE visible_at <= {NOW})"),
            ("ch_inst", "EXISTS (SELECT 1 FROM rewound)"),
        )
        + " SELECT (SELECT count(*) FROM rewound), (SELECT count(*) FROM wake)"
    )


class PgInstances:
    """The verbs on instance rows of `PostgresProvider`."""

    # Set by PostgresProvider.
    schema: str
    _sql: PgSql
    _wake_params: dict[str, Any]
    _wakeups: LocalWakeups

    def _connection(self, kept: bool = False) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """Return the instance row, or ``None``."""
        # The call a waiting client repeats: through libpq directly (_pg_raw),
        # on the kept connection when it is free (_pg_kept).
        async with self._connection(kept=True) as conn:
            rows = await raw.fetch(conn, self._sql.get_instance, {"iid": instance_id})
        if not rows:
            return None
        row: list[Any] = list(rows[0])
        row[3] = int(row[3])  # execution_id; created_at, updated_at: float8
        row[9], row[10] = float(row[9]), float(row[10])
        return instance_record(row)

    async def read_values(self, instance_id: str) -> str | None:
        """See `Provider.read_values`."""
        sql = (
            f"SELECT coalesce(state_values, '{{}}') FROM"
            f" {quote_ident(self.schema)}.instances WHERE instance_id = %s"
        )
        async with self._connection() as conn:
            cursor = await conn.execute(sql, (instance_id,))
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def list_instances(
        self, *, status: InstanceStatus | None = None, limit: int = 100
    ) -> list[InstanceRecord]:
        """Return instances, newest first, optionally filtered by status."""
        sql = self._sql.list_all if status is None else self._sql.list_status
        async with self._connection() as conn:
            cursor = await conn.execute(sql, {"status": status, "limit": limit})
            rows = await cursor.fetchall()
        return [instance_record(row) for row in rows]

    async def query_instances(self, query: InstanceQuery) -> InstanceBatch:
        """Return one page of the instances matching *query*, newest first.

        Raises:
            ValueError: ``query.cursor`` is not a cursor this provider made.
        """
        table = f"{quote_ident(self.schema)}.instances"
        sql, params = query_sql(query, INSTANCE_COLUMNS, table, "seq")
        async with self._connection() as conn:
            cursor = await conn.execute(sql.replace("?", "%s"), params)
            rows = await cursor.fetchall()
        page = rows[: query.limit]
        last = page[-1] if page and len(rows) > query.limit else None
        return InstanceBatch(
            [instance_record(row) for row in page],
            None if last is None else encode_cursor(last[9], last[-1]),
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
        s = quote_ident(self.schema)
        roots_sql, params = purge_roots_sql(statuses, f"{s}.instances")
        params += [finished_before, limit]
        sql = self._sql
        async with self._connection() as conn, conn.transaction():
            cursor = await conn.execute(
                roots_sql.replace("?", "%s") + " FOR UPDATE SKIP LOCKED", params
            )
            roots = [row[0] for row in await cursor.fetchall()]
            if not roots:
                return 0
            await conn.execute(
                f"DELETE FROM {s}.instances WHERE instance_id = ANY(%(ids)s::text[])",
                {"ids": roots},
            )
            deleted = set(roots)
            level = roots
            while level:
                cursor = await conn.execute(sql.delete_children, {"ids": level})
                level = [r[0] for r in await cursor.fetchall() if r[0] not in deleted]
                deleted.update(level)
            wake = {"ids": sorted(deleted), **self._wake_params}
            for step in sql.delete_steps:
                await conn.execute(step, wake)
        self._wakeups.notify("instances")
        return len(roots)

    async def waiting_instances(
        self, handlers: Handlers, min_wait: float
    ) -> list[tuple[str, str, int]]:
        """See `Provider.waiting_instances`."""
        sql = _waiting(quote_ident(self.schema))
        params = {**handler_params(handlers), "min_wait": min_wait}
        async with self._connection() as conn:
            cursor = await conn.execute(sql, params)
            rows = await cursor.fetchall()
        return [(name, version, int(count)) for name, version, count in rows]

    async def resume_instance(self, instance_id: str) -> bool:
        """See `Provider.resume_instance`."""
        sql = _resume(quote_ident(self.schema))
        async with self._connection() as conn:
            cursor = await conn.execute(sql, {"iid": instance_id, **self._wake_params})
            row = await cursor.fetchone()
        resumed = row is not None and row[0] == 1
        if resumed:
            self._wakeups.notify("orchestrations", "instances")
        return resumed

    async def rewind_instance(self, instance_id: str, message: Message) -> bool:
        """See `Provider.rewind_instance`."""
        sql = _rewind(quote_ident(self.schema))
        params = {"iid": instance_id, **message_params(message), **self._wake_params}
        async with self._connection() as conn:
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
        rewound = row is not None and row[0] == 1
        if rewound:
            self._wakeups.due("orchestrations", message.visible_at)
            self._wakeups.notify("orchestrations", "instances")
        return rewound
