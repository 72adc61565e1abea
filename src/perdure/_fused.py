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

The other half: work a turn schedules is claimed for this runtime's own
worker while it has room (`claim_work`, `hand_over`), so the step after
costs no fetch either.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from ._core._driver import Driver
from ._turn import TurnOutput
from .providers._base import (
    ActivityClaim,
    ActivityItem,
    ActivityResult,
    InstanceRecord,
    OrchestrationItem,
    QueuedMessage,
    TurnCommit,
)

__all__ = [
    "LocalWorker",
    "by_instance",
    "claim_work",
    "fused_item",
    "fused_output",
    "hand_over",
]


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
    fused = _evolve(commit, lock_token=None, consumed=[], acks=acks)
    return TurnOutput(commit=fused, driver=output.driver, events=output.events)


# Claim tokens: unique, not secret (a lease is no capability), so a random
# per-process prefix and a counter; uuid4 per item cost ~10 us a step.
_TOKENS = f"c{uuid.uuid4().hex[:16]}-"
_counter = itertools.count()


class LocalWorker(Protocol):
    """The part of this runtime's activity worker that takes claimed items."""

    def reserve(self, name: str) -> bool:
        """Reserve a slot for an item of activity *name*; False: no room."""

    def claimed(self, items: list[ActivityItem], unused: int) -> None:
        """Run *items*, inserted held; free *unused* reserved slots."""


def claim_work(output: TurnOutput, worker: LocalWorker, lease: float) -> TurnOutput:
    """*output* with the work it schedules claimed for *worker* where it has room.

    Work due now that this runtime's worker can run is inserted held by it
    (`ActivityClaim`) and handed over after the commit (`hand_over`): no
    fetch, no wake-up of other runtimes.

    The claims are written into the commit's own list of work, which
    `perdure._commit.to_commit` made for this commit alone (as the
    provider writes each claim's item id into its `ActivityClaim`): copying
    the commit and its output for them was a tenth of a runtime's CPU on a
    PostgreSQL chain.
    """
    works = output.commit.activities
    if not works:
        return output
    # Highest priority first, when there is room for only some of them;
    # tagged and session work is left to the routed fetch (docs/routing.md).
    for i in sorted(range(len(works)), key=lambda i: -works[i].priority):
        w = works[i]
        routed = w.tag is not None or w.session is not None
        if w.visible_at is None and not routed and worker.reserve(w.name):
            token = f"{_TOKENS}{next(_counter):x}"
            works[i] = _evolve(w, claim=ActivityClaim(token, lease))
    return output


_T = TypeVar("_T")


def _evolve(record: _T, **changes: Any) -> _T:
    """`dataclasses.replace` for the frozen slotted records here, in half the time.

    The copies are made on every step, and these records check nothing in
    ``__init__`` that the changed fields could break.
    """
    cls = type(record)
    copy = object.__new__(cls)
    for name in cls.__slots__:  # type: ignore[attr-defined]
        value = changes.pop(name) if name in changes else getattr(record, name)
        object.__setattr__(copy, name, value)
    if changes:
        raise TypeError(f"{cls.__name__} has no fields {sorted(changes)}")
    return copy


def hand_over(
    worker: LocalWorker, commits: Sequence[TurnCommit], oks: Sequence[bool]
) -> None:
    """Give *worker* the claimed items of the committed turns; free the rest."""
    items: list[ActivityItem] = []
    unused = 0
    for commit, ok in zip(commits, oks, strict=True):
        for w in commit.activities:
            claim = w.claim
            if claim is None:
                continue
            if not ok or claim.id is None:
                unused += 1
                continue
            items.append(
                ActivityItem(
                    id=claim.id,
                    instance_id=w.instance_id,
                    execution_id=w.execution_id,
                    event_id=w.event_id,
                    name=w.name,
                    body=w.body,
                    lock_token=claim.lock_token,
                    attempt=1,
                )
            )
    if items or unused:
        worker.claimed(items, unused)
