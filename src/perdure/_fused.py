"""Fused acknowledgements: an activity's result and the turn it wakes, one commit.

Without them a step costs two commits: the worker stores the result as a
message (`Provider.complete_activities`), then the dispatcher fetches the
instance, runs the turn and commits it. When the instance's driver is
cached here, the worker instead hands its results to the dispatcher, which
runs the turn at once, without fetching or locking the instance, and
commits it with ``lock_token=None`` and the items in ``acks``: the provider
writes it only if nobody holds the instance, no message of it is due that
the turn did not see, its history is still the cached one, and every item
is still held; then the items are deleted with it. Otherwise nothing is
written and the results take the usual path (a stale cache, another
runtime's turn, a timer that fired first: DESIGN §7 order is kept).

A crash before the commit leaves the items held, so they run again when
their leases expire, exactly as when a crash comes before an
acknowledgement is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ._core._driver import Driver
from ._turn import TurnOutput
from .providers._base import (
    ActivityResult,
    InstanceRecord,
    OrchestrationItem,
    QueuedMessage,
)

__all__ = ["by_instance", "fused_item", "fused_output"]


def by_instance(results: Sequence[ActivityResult]) -> dict[str, list[ActivityResult]]:
    """Group *results* by instance, each group in arrival order."""
    groups: dict[str, list[ActivityResult]] = {}
    for result in results:
        groups.setdefault(result.instance_id, []).append(result)
    return groups


def fused_item(
    driver: Driver, results: Sequence[ActivityResult], now: float
) -> OrchestrationItem | None:
    """The item a fused turn runs: the cached instance and *results* as messages.

    The messages get ids -1, -2, ...: they were never stored, and
    `fused_output` checks the turn consumed every one of them. ``None`` if
    the results cannot be fused (a delayed message, a driver that has not
    started).
    """
    start = driver.started
    if start is None or any(r.message.visible_at is not None for r in results):
        return None
    record = InstanceRecord(
        instance_id=driver.instance_id,
        name=start.name,
        version=start.version,
        execution_id=driver.execution_id,
        status="Running",
    )
    messages = [
        QueuedMessage(id=-n, kind=r.message.kind, body=r.message.body, occurred_at=now)
        for n, r in enumerate(results, 1)
    ]
    return OrchestrationItem(
        instance=record,
        messages=messages,
        history_len=driver.history_len,
        lock_token="",
        attempt=0,
    )


def fused_output(
    output: TurnOutput, item: OrchestrationItem, results: Sequence[ActivityResult]
) -> TurnOutput | None:
    """The turn's output committing without the lock, acknowledging *results*.

    ``None`` if the turn did not consume every result (it suspended the
    instance, which keeps its messages for later): the results must then be
    stored as messages the usual way.
    """
    commit = output.commit
    if sorted(commit.consumed) != sorted(q.id for q in item.messages):
        return None
    acks = [(r.id, r.lock_token) for r in results]
    return replace(
        output, commit=replace(commit, lock_token=None, consumed=[], acks=acks)
    )
