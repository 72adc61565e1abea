"""Instance listing and purging SQL shared by the SQLite and PostgreSQL providers.

Listing pages with a *keyset*, never OFFSET: a page starts below the last
row of the page before in ``(created_at, tie)`` order, where ``tie`` is the
row's insertion order (SQLite's ``rowid``, PostgreSQL's ``seq``). Each filter
has an index ordered by ``created_at`` and the tie (``instances_by_status``,
``instances_by_name``, ``instances_by_created``), so the database walks one
index range backwards from the cursor and stops after ``limit + 1`` rows: a
page costs the same at a million instances as at a thousand. The range
condition is written ``created_at <= ?`` (an index bound) plus a filter on
the few rows that share the cursor's timestamp, rather than a row-value or
OR comparison an index range cannot use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from perdure.providers._records import InstanceQuery, InstanceStatus

__all__ = [
    "FINISHED",
    "decode_cursor",
    "encode_cursor",
    "purge_roots_sql",
    "query_sql",
]

#: The statuses a purge may delete.
FINISHED: frozenset[InstanceStatus] = frozenset({"Completed", "Failed", "Cancelled"})
_PREFIX = "c1:"


def encode_cursor(created_at: float, tie: int) -> str:
    """The cursor of the page after a row created at *created_at* (tie *tie*)."""
    return f"{_PREFIX}{created_at!r}:{tie}"


def decode_cursor(cursor: str) -> tuple[float, int]:
    """Parse a cursor made by `encode_cursor`.

    Raises:
        ValueError: Not such a cursor.
    """
    try:
        if not cursor.startswith(_PREFIX):
            raise ValueError(cursor)
        created, tie = cursor[len(_PREFIX) :].rsplit(":", 1)
        value = float(created)
        if not math.isfinite(value):
            raise ValueError(cursor)
        return value, int(tie)
    except (ValueError, AttributeError):
        raise ValueError(
            f"invalid cursor {cursor!r}: pass the next_cursor of a previous page"
        ) from None


def query_sql(
    query: InstanceQuery, columns: str, table: str, tie: str
) -> tuple[str, list[Any]]:
    """The SELECT of one page of *query* (``?`` placeholders), and its parameters.

    It selects *columns*, then the tie column, and asks for ``limit + 1``
    rows: the extra row only tells that there is a next page.
    """
    where: list[str] = []
    params: list[Any] = []
    if query.status is not None:
        where.append("status = ?")
        params.append(query.status)
    if query.name is not None:
        where.append("name = ?")
        params.append(query.name)
    if query.version is not None:
        where.append("version = ?")
        params.append(query.version)
    if query.created_after is not None:
        where.append("created_at >= ?")
        params.append(query.created_after)
    if query.created_before is not None:
        where.append("created_at < ?")
        params.append(query.created_before)
    if query.cursor is not None:
        created, last = decode_cursor(query.cursor)
        where.append(f"created_at <= ? AND NOT (created_at = ? AND {tie} >= ?)")
        params.extend((created, created, last))
    sql = f"SELECT {columns}, {tie} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created_at DESC, {tie} DESC LIMIT ?"
    params.append(query.limit + 1)
    return sql, params


def purge_roots_sql(
    statuses: Sequence[InstanceStatus], table: str
) -> tuple[str, list[Any]]:
    """SELECT of the top-level instances a purge deletes (``?`` placeholders).

    Parameters to append: ``finished_before``, then ``limit``.
    """
    unknown = set(statuses) - FINISHED
    if unknown or not statuses:
        raise ValueError(
            "purge deletes finished instances only (Completed, Failed, "
            f"Cancelled), not {sorted(unknown) or 'nothing'}"
        )
    marks = ", ".join("?" for _ in statuses)
    sql = (
        f"SELECT instance_id FROM {table} WHERE status IN ({marks})"
        " AND parent_instance_id IS NULL AND updated_at < ? LIMIT ?"
    )
    return sql, list(statuses)
