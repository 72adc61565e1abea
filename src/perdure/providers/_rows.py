"""Row-to-record mapping shared by the SQL providers.

Both providers select the same column lists (instance columns, activity
fetch ``RETURNING``), so one mapping serves both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from perdure.providers._base import ActivityItem, InstanceRecord, InstanceStatus

__all__ = ["activity_items", "instance_record"]


def instance_record(row: Sequence[Any]) -> InstanceRecord:
    """Build a record from a row that starts with the instance columns.

    The columns are, in order: instance_id, name, version, execution_id,
    status, output, error, custom_status, parent_instance_id, created_at,
    updated_at.
    """
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        version=row[2],
        execution_id=row[3],
        status=cast(InstanceStatus, row[4]),
        output=row[5],
        error=row[6],
        custom_status=row[7],
        parent_instance_id=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def activity_items(rows: Iterable[Sequence[Any]]) -> list[ActivityItem]:
    """Map fetched activity rows, oldest first.

    Each row is (id, instance_id, execution_id, event_id, name, body,
    lock_token, attempt); ``RETURNING`` order is unspecified, so rows are
    sorted by id.
    """
    return [
        ActivityItem(
            id=row[0],
            instance_id=row[1],
            execution_id=row[2],
            event_id=row[3],
            name=row[4],
            body=row[5],
            lock_token=row[6],
            attempt=row[7],
        )
        for row in sorted(rows, key=lambda row: row[0])
    ]
