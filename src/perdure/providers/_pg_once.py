"""Exactly-once enqueue across an unknown outcome (a client raising an event).

When the connection breaks while an ``INSERT`` runs, the caller cannot know
whether it committed, and a plain retry could deliver an event twice. So
`PgOnce` writes the message in two idempotent steps: `enqueue_hidden`
inserts it under a unique key, invisible for *hold* seconds, unless a
message with that key is already queued (while invisible no turn can
consume it, so "already queued" is a reliable answer); `reveal` then makes
it visible at its occurrence time. Each step can be retried after any
failure. If the caller gives up between the two, the message still becomes
visible when its hold ends: late, but once.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg

from perdure.providers._base import Message
from perdure.providers._pg_schema import quote_ident
from perdure.providers._pg_wake import NOW, wake as wake_cte
from perdure.providers.helpers import LocalWakeups

__all__ = ["PgOnce"]

Conn = psycopg.AsyncConnection[Any]


def _hide(s: str) -> str:
    return (
        f"WITH sent AS (INSERT INTO {s}.messages"
        " (instance_id, kind, body, visible_at, key, occurred_at)"
        f" SELECT %(iid)s, %(kind)s, %(body)s, {NOW} + %(hold)s, %(key)s, {NOW}"
        f" WHERE EXISTS (SELECT 1 FROM {s}.instances WHERE instance_id = %(iid)s)"
        f" AND NOT EXISTS (SELECT 1 FROM {s}.messages WHERE instance_id = %(iid)s"
        " AND key = %(key)s) RETURNING 1)"
        f" SELECT EXISTS (SELECT 1 FROM {s}.instances WHERE instance_id = %(iid)s)"
    )


def _reveal(s: str) -> str:
    return (
        f"WITH shown AS (UPDATE {s}.messages SET visible_at = occurred_at"
        f" WHERE instance_id = %(iid)s AND key = %(key)s AND visible_at > {NOW}"
        " RETURNING 1), "
        + wake_cte(("ch_orch", "EXISTS (SELECT 1 FROM shown)"))
        # A plain SELECT in a CTE runs only if referenced: hence the count.
        + " SELECT (SELECT count(*) FROM shown), (SELECT count(*) FROM wake)"
    )


class PgOnce:
    """Two-step, retry-safe enqueue of `PostgresProvider` (see module doc)."""

    # Set by PostgresProvider.
    schema: str
    _wake_params: dict[str, str]
    _wakeups: LocalWakeups

    def _connection(self) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError

    async def enqueue_hidden(
        self, instance_id: str, message: Message, key: str, hold: float
    ) -> bool:
        """Queue *message* under *key*, invisible for *hold* seconds (idempotent).

        Returns:
            ``False`` if there is no such instance (nothing is written).
        """
        params = {
            "iid": instance_id,
            "kind": message.kind,
            "body": message.body,
            "key": key,
            "hold": float(hold),
        }
        async with self._connection() as conn:
            cursor = await conn.execute(_hide(quote_ident(self.schema)), params)
            row = await cursor.fetchone()
        return bool(row and row[0])

    async def reveal(self, instance_id: str, key: str) -> None:
        """Make the message queued by `enqueue_hidden` visible now (idempotent)."""
        params = {"iid": instance_id, "key": key, **self._wake_params}
        async with self._connection() as conn:
            await conn.execute(_reveal(quote_ident(self.schema)), params)
        self._wakeups.notify("orchestrations")
