"""The client's operating queries: list, page through and purge instances (§10).

`Client` inherits `ClientQueries`; they share its storage and its retry of
connection-level errors (`perdure._client_retry`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from ._client_retry import Retry
from ._client_types import InstancePage, check_limit, statuses_of, unix_time
from ._registry import name_of
from ._state import OrchestrationState
from .providers._base import InstanceQuery, InstanceStatus, Provider

__all__ = ["ClientQueries"]

_PURGE_BATCH = 1000


class ClientQueries:
    """Listing and purging instances; see `perdure.Client`."""

    _retry: Retry

    async def _store(self) -> Provider:
        raise NotImplementedError

    async def list_instances(
        self,
        *,
        status: InstanceStatus | None = None,
        name: str | Callable[..., Any] | None = None,
        version: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InstancePage:
        """One page of instances, newest first, filtered.

        Every filter is optional and they combine. Pass the page's
        ``next_cursor`` (with the same filters) for the next page; paging
        neither skips nor repeats an instance when others are created
        meanwhile, and a page costs the same however many instances exist.

        Args:
            status: Only instances with this status.
            name: Only instances of this orchestration.
            version: Only instances of this version.
            created_after: Only those created at or after this time
                (timezone-aware datetime or Unix seconds).
            created_before: Only those created before this time.
            limit: Page size, 1 to 10,000.
            cursor: ``next_cursor`` of the previous page.

        Raises:
            ValueError: A bad *limit*, a naive datetime, or a cursor that is
                not a ``next_cursor``.
        """
        check_limit(limit, "limit")
        query = InstanceQuery(
            status=status,
            name=None if name is None else name_of(name),
            version=version,
            created_after=unix_time(created_after, "created_after"),
            created_before=unix_time(created_before, "created_before"),
            limit=limit,
            cursor=cursor,
        )
        store = await self._store()
        batch = await self._retry.call(lambda: store.query_instances(query))
        return InstancePage(
            [OrchestrationState.from_record(r) for r in batch.records],
            batch.next_cursor,
        )

    async def iter_instances(
        self,
        *,
        status: InstanceStatus | None = None,
        name: str | Callable[..., Any] | None = None,
        version: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[OrchestrationState[Any]]:
        """Every instance matching the filters, newest first (`list_instances`).

        Reads a page of *page_size* at a time, as the iteration goes.
        """
        check_limit(page_size, "page_size")
        cursor: str | None = None
        while True:
            page = await self.list_instances(
                status=status,
                name=name,
                version=version,
                created_after=created_after,
                created_before=created_before,
                limit=page_size,
                cursor=cursor,
            )
            for state in page.items:
                yield state
            cursor = page.next_cursor
            if cursor is None:
                return

    async def purge_instances(
        self,
        *,
        status: InstanceStatus | Sequence[InstanceStatus] | None = None,
        finished_before: datetime | float,
    ) -> int:
        """Delete finished instances that ended before a time (retention).

        Only top-level instances are chosen; each goes with its history and
        its sub-orchestrations, as `delete_instance` does. Deletes in
        batches of 1,000 (one transaction each), so a large purge never
        holds locks for long.

        Args:
            status: ``Completed``, ``Failed`` or ``Cancelled``, or several;
                by default all three. Running and suspended instances are
                never purged.
            finished_before: Instances that ended before this time
                (timezone-aware datetime or Unix seconds).

        Returns:
            How many top-level instances were deleted.

        Raises:
            ValueError: A status that is not a finished one, or a naive
                datetime.
        """
        statuses = statuses_of(status)
        before = unix_time(finished_before, "finished_before")
        assert before is not None
        store = await self._store()
        total = 0
        while True:
            count = await self._retry.call(
                lambda: store.purge_instances(
                    statuses=statuses, finished_before=before, limit=_PURGE_BATCH
                )
            )
            total += count
            if count < _PURGE_BATCH:
                return total
