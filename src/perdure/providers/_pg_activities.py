"""PostgreSQL verbs on activity work: fetch, complete, abandon, renew, heartbeats.

`PostgresProvider` inherits `PgActivities`; each verb is one statement.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg

from perdure.providers._base import (
    ActivityHeartbeat,
    ActivityItem,
    ActivityResult,
)
from perdure.providers._pg_batch import complete, save_heartbeats
from perdure.providers._pg_open import AdaptivePoll
from perdure.providers._pg_sql import SPARE_FOR, PgSql
from perdure.providers.helpers import LocalWakeups, activity_items

__all__ = ["PgActivities"]

Conn = psycopg.AsyncConnection[Any]


class PgActivities:
    """The activity-worker verbs of `PostgresProvider`."""

    # Set by PostgresProvider.
    _sql: PgSql
    _wake_params: dict[str, Any]
    _wakeups: LocalWakeups
    _poll: AdaptivePoll | None

    def clock(self) -> float:
        raise NotImplementedError

    def _connection(self) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError

    async def _one(self, sql: str, params: dict[str, Any]) -> tuple[int, ...]:
        raise NotImplementedError

    async def fetch_activities(
        self, max_items: int, lock_timeout: float
    ) -> list[ActivityItem]:
        """Lock up to *max_items* visible activity work items, oldest first.

        Items other runtimes hold or are locking right now are skipped.
        """
        if max_items <= 0:
            return []
        async with self._connection() as conn:
            cursor = await conn.execute(
                self._sql.fetch_activities,
                {"n": max_items, "lease": lock_timeout},
                prepare=True,
            )
            rows = await cursor.fetchall()
        # See _wake_params: while our worker has room, our commits wake no
        # other runtime for the activities they schedule.
        self._wake_params["spare_act"] = (
            self.clock() + SPARE_FOR if len(rows) < max_items else 0.0
        )
        if rows and self._poll is not None:
            self._poll.busy("activities")
        return activity_items(rows)

    async def complete_activities(self, results: Sequence[ActivityResult]) -> None:
        """Delete each held item and enqueue its completion, atomically per item.

        A result whose item is gone or held under another token (cancelled,
        or its lease expired and another worker took it) is dropped. The
        batch is one statement; if a value in it cannot be sent, each result
        is sent alone, and one that still fails is replaced (see
        `perdure.providers._unwritable.replacement`).
        """
        unique = list({result.id: result for result in reversed(results)}.values())
        unique.reverse()  # first result of each id, in the given order
        if not unique:
            return
        async with self._connection() as conn:
            sent = await complete(
                conn, self._sql.complete_activities, self._wake_params, unique
            )
        if sent:
            for result in unique:
                self._wakeups.due("orchestrations", result.message.visible_at)
            self._wakeups.notify("orchestrations")

    async def abandon_activity(
        self, id: int, lock_token: str, delay: float = 0.0
    ) -> None:
        """Release an item; it becomes visible again after *delay* (retries).

        Its attempt counter is kept and grows on the next fetch.
        """
        released, _ = await self._one(
            self._sql.abandon_activity,
            {
                "id": id,
                "token": lock_token,
                "delay": float(max(delay, 0.0)),
                **self._wake_params,
            },
        )
        if released:
            if delay > 0:
                self._wakeups.due("activities", time.time() + delay)
            else:
                self._wakeups.notify("activities")

    async def renew_activity_locks(
        self, leases: Sequence[tuple[int, str]], lock_timeout: float
    ) -> list[int]:
        """Extend held leases; return ids no longer held (deleted or taken)."""
        if not leases:
            return []
        async with self._connection() as conn:
            cursor = await conn.execute(
                self._sql.renew_activities,
                {
                    "ids": [item_id for item_id, _ in leases],
                    "tokens": [token for _, token in leases],
                    "lease": lock_timeout,
                },
            )
            return [row[0] for row in await cursor.fetchall()]

    async def save_activity_heartbeats(
        self, beats: Sequence[ActivityHeartbeat]
    ) -> list[int]:
        """Store held items' latest heartbeat details (see `SavesHeartbeats`)."""
        async with self._connection() as conn:
            return await save_heartbeats(conn, self._sql.save_heartbeats, beats)
