"""The storage provider contract: the `Provider` protocol and its rules.

Providers speak domain verbs, never orchestration semantics. Payloads
(message bodies, history events, activity inputs, outputs) are JSON text the
runtime produces and reads; a provider stores them opaquely.

The record types it speaks (`TurnCommit`, `Message`, ...) live in
`perdure.providers._records` and are re-exported here.

What every provider must guarantee (the conformance suite,
`perdure.providers.conformance`, checks each rule; docs/providers.md walks
through them):

Leases. Every queue uses peek-lock with expiring leases: a fetched item is
locked with a fresh ``lock_token`` until ``clock() + lock_timeout``; a
locked item is not fetched again until then. If its holder crashes, the
lease expires and another fetch takes it again; its ``attempt`` counter
grows by one on every fetch (which is how poison messages are detected)
and is reset by a committed turn. A verb given a token that no longer
holds its item (expired and taken, or the item is gone) writes nothing.

Order. A fetch returns an instance's visible messages in occurrence order
(``occurred_at``, ties in arrival order: DESIGN §7) and takes instances in
the order of their oldest due message, so none starves. A message is never
fetched before its ``visible_at``.

Turns (`Provider.commit_turns`). Each turn is atomic: all of it or
nothing. A turn whose lock is no longer held, or whose ``history_start``
is not the stored history length (or, on a move to a newer execution, is
not 0), is rejected and writes nothing; the others of the batch still
commit. Within a turn the writes behave as if applied in this order, the
*commit rules*:

1. the guard (lock, history length, execution) and the instance row;
2. events, with ids consecutive from ``history_start + 1`` (otherwise
   `ValueError` before anything is written: a runtime bug);
3. consumed messages deleted;
4. activity work inserted, *then* ``cancel_activities`` deleted, so work
   scheduled and cancelled in one turn ends up gone (a duplicate
   ``(instance, execution, event)`` is ignored);
5. ``new_instances`` created (an id taken: ``on_conflict`` is sent
   instead, or nothing), *then* ``outbound`` sent, so a message to a child
   created by this very turn is delivered; outbound to a missing instance
   is dropped;
6. keyed messages dropped last, so a timer set and cancelled in one turn
   ends up gone.

Duplicates. A completion (`ActivityResult`) whose item is gone or held
under another token is dropped, which is how duplicate completions from
workers whose lease expired disappear.

Heartbeats (optional). A provider that also implements `SavesHeartbeats`
stores the latest heartbeat details of each held activity item; the
details survive `Provider.abandon_activity` (retries, shutdown) and lease
expiry (a crash) and come back in `ActivityItem.heartbeat_details` on every
later fetch of the item, whichever runtime fetches it, until the item is
completed or deleted. A provider without it still works: the runtime then
keeps no details between attempts (and says so once in its log).

Routing (optional). A provider that also implements `RoutesActivities`
fetches activity work for one runtime: only the names it registered, the
tags it serves, sessions it owns (or free ones, which it then owns), within
the concurrency and rate limits it declares (counted over every runtime),
highest priority first (docs/routing.md). Without it the runtime fetches
everything with `Provider.fetch_activities` and ignores tags, sessions,
limits and priorities.

Wake-ups. `Provider.wait` may return spuriously but must never lose a
wake-up: a write made after the calling task's previous provider call
makes it return at once. `perdure.providers.helpers.LocalWakeups` is the
documented way to meet this rule in one process (a cursor per task, taken
at the start of every verb); a polling backend may instead sleep in
``wait`` for at most its timeout, which is correct, only slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from perdure.providers._records import (
    ActivityClaim,
    ActivityHeartbeat,
    ActivityItem,
    ActivityLimit,
    ActivityResult,
    ActivityRouting,
    ActivityWork,
    Channel,
    Handlers,
    InstanceBatch,
    InstanceQuery,
    InstanceRecord,
    InstanceStatus,
    Message,
    NewInstance,
    OrchestrationItem,
    Outbound,
    QueuedMessage,
    TurnCommit,
    WorkRef,
)

__all__ = [
    "ActivityHeartbeat",
    "ActivityItem",
    "ActivityLimit",
    "ActivityResult",
    "ActivityClaim",
    "ActivityRouting",
    "ActivityWork",
    "Channel",
    "InstanceBatch",
    "InstanceQuery",
    "InstanceRecord",
    "InstanceStatus",
    "Handlers",
    "Message",
    "NewInstance",
    "OrchestrationItem",
    "Outbound",
    "Provider",
    "QueuedMessage",
    "RoutesActivities",
    "SavesHeartbeats",
    "TurnCommit",
    "WorkRef",
]


@runtime_checkable
class Provider(Protocol):
    """What the runtime and the client need from storage.

    All methods are coroutines; a provider may run blocking work in a
    thread. A provider object may be shared by a runtime and clients in the
    same process; it must then wake local waiters (see `wait`) on writes.
    """

    async def open(self) -> None:
        """Connect and apply pending migrations (idempotent)."""

    async def close(self) -> None:
        """Release connections and threads."""

    def clock(self) -> float:
        """Return the current time on the storage's clock (Unix seconds).

        The runtime stamps turns (and so timer fire times) with it, so that
        every occurrence time an instance sees comes from one clock: the
        database server's on PostgreSQL, this machine's on SQLite. Must not
        block (an estimate kept up to date by other calls is fine).
        """

    # --- client verbs -------------------------------------------------
    async def create_instance(self, new: NewInstance) -> None:
        """Create an instance row (status Running) and enqueue its start message.

        Raises:
            InstanceExists: The id is taken; nothing is written.
        """

    async def enqueue(self, instance_id: str, message: Message) -> None:
        """Append a message to an instance's queue.

        Raises:
            InstanceNotFound: No such instance; nothing is written.
        """

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """Return the instance row, or ``None``."""

    async def read_values(self, instance_id: str) -> str | None:
        """Return the JSON text of the instance's values, or ``None`` if unknown.

        The values are the object the last committed turn that changed them
        wrote (`TurnCommit.state_values`); ``"{}"`` when none was ever
        written. They stay with the row whatever its status or execution.
        """

    async def list_instances(
        self, *, status: InstanceStatus | None = None, limit: int = 100
    ) -> list[InstanceRecord]:
        """Return instances, newest first, optionally filtered by status."""

    async def query_instances(self, query: InstanceQuery) -> InstanceBatch:
        """Return one page of the instances matching *query* (`InstanceQuery`).

        A page must cost the same however many instances are stored (an
        index serves every filter's order; no OFFSET).

        Raises:
            ValueError: ``query.cursor`` is not a cursor this provider made.
        """

    async def purge_instances(
        self,
        *,
        statuses: Sequence[InstanceStatus],
        finished_before: float,
        limit: int,
    ) -> int:
        """Delete up to *limit* finished instances, in one transaction.

        Only top-level instances (no parent) whose status is in *statuses*
        (``Completed``, ``Failed``, ``Cancelled``: never a running or
        suspended one) and that ended before *finished_before* (Unix time,
        the row's ``updated_at``); each goes with its sub-orchestrations, as
        `delete_instance` does.

        Returns:
            How many top-level instances were deleted (the caller repeats
            until it gets fewer than *limit*).
        """

    async def read_history(
        self, instance_id: str, execution_id: int | None = None
    ) -> list[str]:
        """Return the JSON text of each event, in event-id order.

        ``execution_id=None`` reads the instance's current execution.
        """

    async def delete_instance(self, instance_id: str) -> bool:
        """Delete an instance and its sub-orchestrations, in one transaction.

        Sub-orchestrations are the instances whose ``parent_instance_id`` is
        a deleted one, recursively, whatever their status; each goes with
        its history, messages and activity work. A child left behind would
        keep running and, once the id is re-used, deliver its result to the
        new instance. A turn of a deleted instance that commits later is
        rejected (its row is gone), so nothing it sends survives.

        Returns:
            ``False`` if there was no such instance (nothing is deleted).
        """

    # --- orchestration dispatcher --------------------------------------
    async def fetch_orchestrations(
        self, max_items: int, lock_timeout: float, handlers: Handlers | None = None
    ) -> list[OrchestrationItem]:
        """Lock up to *max_items* instances that have visible messages.

        Each item holds every visible message of its instance, in
        occurrence order; instances come oldest due message first. Each
        fetch grows the instance's ``attempt`` counter by one.

        ``Suspended`` instances are never fetched: their messages wait for
        `resume_instance`. With *handlers* (version routing, DESIGN §9), a
        ``Running`` instance is fetched only if its ``(name, version)`` is
        among them, or its version is ``""`` (not chosen yet: the first
        turn picks one) and its name is; instances in any other status are
        fetched by anyone, only to consume their late messages.
        """

    async def waiting_instances(
        self, handlers: Handlers, min_wait: float
    ) -> list[tuple[str, str, int]]:
        """Count what no runtime with *handlers* would fetch, though it waits.

        Returns ``(name, version, count)`` for ``Running``, unlocked
        instances outside *handlers* (as `fetch_orchestrations` matches
        them) that have had a visible message for at least *min_wait*
        seconds: instances whose version no running runtime registered.
        """

    async def resume_instance(self, instance_id: str) -> bool:
        """Make a ``Suspended`` instance ``Running`` again; keep everything else.

        Its error is cleared and its attempt counter reset; its messages,
        history and pending work are as they were, so its next turn replays
        the history with the code deployed now.

        Returns:
            ``False`` if the instance is not ``Suspended`` (nothing changes).
        """

    async def rewind_instance(self, instance_id: str, message: Message) -> bool:
        """Make a ``Failed`` instance ``Running`` again, to rewind it (DESIGN §9).

        Atomically, and only if the instance is ``Failed``: its status
        becomes ``Running``, its error and output are cleared, its attempt
        counter is reset and a lock held on it is released (a turn in
        flight, consuming late messages, is then rejected); *all* its
        activity work is deleted (the rewind turn sends again what is still
        open, so a completion of an attempt still running is dropped as
        stale); and *message* is enqueued for it. Its history and queued
        messages stay as they are.

        Returns:
            ``False`` if the instance is not ``Failed`` (nothing changes).
        """

    async def commit_turns(self, turns: Sequence[TurnCommit]) -> list[bool]:
        """Commit turns; each one atomically. Returns per-turn success.

        A turn whose lock is no longer held, or whose ``history_start`` does
        not match, writes nothing and reports ``False``. A successful turn
        releases the instance lock and resets its attempt counter.

        No member's failure reaches the others. A turn that storage cannot
        write (the driver refuses one of its values: a lone surrogate, a NUL
        in PostgreSQL text, an int beyond 64 bits) writes nothing and
        reports ``False`` while the others commit; its lock, if still held,
        is released at once (the cause is logged), so the instance is
        fetched again with a grown attempt counter and the caller's
        ``max_attempts`` fails it as poison. Only a
        failure of the storage itself (connection lost, disk full) fails the
        call, with `StorageError`, and then nothing is written. A turn that
        stored rows contradict (a constraint) is rejected alone too, but
        keeps its lock, as a stale one does.
        """

    async def abandon_orchestration(
        self, instance_id: str, lock_token: str, delay: float = 0.0
    ) -> None:
        """Release the lock without committing.

        The instance's messages become visible again after *delay* seconds.
        """

    # --- activity worker -------------------------------------------------
    async def fetch_activities(
        self, max_items: int, lock_timeout: float
    ) -> list[ActivityItem]:
        """Lock up to *max_items* visible activity work items."""

    async def complete_activities(self, results: Sequence[ActivityResult]) -> None:
        """Delete each held item and enqueue its completion, atomically per item.

        No result's failure reaches the others. A result whose message
        storage cannot write is replaced by an ``activity_failed`` message
        for the same work (a completion fails with ``PayloadError``; a
        failure keeps its error, its text escaped), so the instance learns
        why at once and the activity does not run again. Only a failure of
        the storage itself raises (`StorageError`; nothing is written), so a
        caller retrying the batch on errors retries only outages.
        """

    async def abandon_activity(
        self, id: int, lock_token: str, delay: float = 0.0
    ) -> None:
        """Release an item; it becomes visible again after *delay* (retries)."""

    async def renew_activity_locks(
        self, leases: Sequence[tuple[int, str]], lock_timeout: float
    ) -> list[int]:
        """Extend held leases; return ids no longer held (deleted or taken)."""

    # --- wake-ups ----------------------------------------------------------
    async def wait(self, channel: Channel, timeout: float) -> None:
        """Return when *channel* may have new work, or after *timeout* seconds.

        ``orchestrations``: a message was enqueued or became visible, or a
        lock was released; ``activities``: work was enqueued or released;
        ``instances``: an instance's status changed. Spurious returns are
        allowed; the caller re-checks. No wake-up may be lost: the calling
        task's previous provider call is its cursor, and a notification
        made after it (e.g. between its fetch and this wait) makes the wait
        return at once. Compose `perdure.providers.helpers.LocalWakeups` to
        get this right; see the module docstring.
        """


# --- heartbeats (optional verb) ----------------------------------------------


@runtime_checkable
class SavesHeartbeats(Protocol):
    """The optional heartbeat verb of a `Provider` (see the module docstring).

    The runtime calls it at most once per lease renewal (a third of
    ``lock_timeout``) with the items whose details changed, and before it
    gives an item back (a retry, a shutdown), so it is off the hot path.
    """

    async def save_activity_heartbeats(
        self, beats: Sequence[ActivityHeartbeat]
    ) -> list[int]:
        """Store each held item's latest details, replacing earlier ones.

        Each beat is written only if its ``lock_token`` still holds the
        item; it neither extends nor changes the lease. The details come
        back in `ActivityItem.heartbeat_details` on every later fetch of the
        item, until it is completed or deleted.

        Returns:
            Ids of the items not held under the beat's token (deleted,
            cancelled or taken by another worker); nothing is written for
            them.
        """


# --- activity routing (optional verbs) ------------------------------------------


@runtime_checkable
class RoutesActivities(Protocol):
    """The optional routing verbs of a `Provider` (see docs/routing.md)."""

    async def fetch_routed_activities(
        self, max_items: int, lock_timeout: float, routing: ActivityRouting
    ) -> list[ActivityItem]:
        """Lock up to *max_items* visible items that *routing* may take.

        An item is taken only if its name is in ``routing.names``; its tag
        is ``None`` or in ``routing.tags``; its session is ``None``, owned by
        ``routing.owner``, or not owned by a live lease (the fetch then makes
        ``routing.owner`` its owner for ``lock_timeout``); and, for a name
        in ``routing.limits``, taking it keeps the items of that name leased
        by anyone at or under ``concurrency`` and the fetches of that name
        in the last ``per`` seconds at or under ``rate``. Checking a limit
        and taking items is atomic with respect to every other fetch that
        declares a limit for the name. Items come highest ``priority``
        first, then oldest first.
        """

    async def renew_activity_sessions(
        self, owner: str, sessions: Sequence[str], lease: float
    ) -> list[str]:
        """Extend *owner*'s leases on *sessions*; return those it no longer owns."""

    async def release_activity_sessions(self, owner: str) -> None:
        """Drop every session lease of *owner* (its next items go to anyone)."""

    async def waiting_activities(
        self, routing: ActivityRouting, min_wait: float
    ) -> list[tuple[str, str | None, int]]:
        """Count unleased items *routing* would never take, by name and tag.

        Returns ``(name, tag, count)`` for items visible for at least
        *min_wait* seconds whose name is not in ``routing.names`` or whose
        tag is not in ``routing.tags``.
        """
