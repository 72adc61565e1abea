"""The storage provider contract: record types and the `Provider` protocol.

Providers speak domain verbs, never orchestration semantics. Payloads
(message bodies, history events, activity inputs, outputs) are JSON text the
runtime produces and reads; a provider stores them opaquely.

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

Wake-ups. `Provider.wait` may return spuriously but must never lose a
wake-up: a write made after the calling task's previous provider call
makes it return at once. `perdure.providers.helpers.LocalWakeups` is the
documented way to meet this rule in one process (a cursor per task, taken
at the start of every verb); a polling backend may instead sleep in
``wait`` for at most its timeout, which is correct, only slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "ActivityHeartbeat",
    "ActivityItem",
    "ActivityResult",
    "ActivityWork",
    "Channel",
    "InstanceRecord",
    "InstanceStatus",
    "Handlers",
    "Message",
    "NewInstance",
    "OrchestrationItem",
    "Outbound",
    "Provider",
    "QueuedMessage",
    "SavesHeartbeats",
    "TurnCommit",
    "WorkRef",
]

InstanceStatus = Literal["Running", "Suspended", "Completed", "Failed", "Cancelled"]
#: ``(name, version)`` pairs of the orchestrations a runtime registered.
Handlers = Sequence[tuple[str, str]]
Channel = Literal["orchestrations", "activities", "instances"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A message for an instance's orchestrator queue.

    Attributes:
        kind: What the runtime should make of it (``start``,
            ``activity_completed``, ``timer_fired``, ``event_raised``,
            ``cancel``, ...). Opaque to providers.
        body: JSON text, opaque to providers.
        visible_at: Unix time before which the message must not be fetched
            (timers); ``None`` means now (the storage's clock, see
            `Provider.clock`). It is also the message's *occurrence time*
            (DESIGN §7): the provider stores it as ``occurred_at`` at enqueue
            and never changes it, even when a backoff delays ``visible_at``.
        key: Optional handle (unique per instance) by which a later turn can
            drop the message before it is delivered (`TurnCommit.drop_messages`;
            used to delete the fire message of a cancelled timer).
    """

    kind: str
    body: str
    visible_at: float | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedMessage:
    """A stored orchestrator message, as fetched.

    Attributes:
        id: Orders arrival (ties of ``occurred_at``).
        kind: See `Message.kind`.
        body: See `Message.body`.
        occurred_at: When what it reports happened (`Message.visible_at` at
            enqueue); fetches return an instance's messages in this order.
    """

    id: int
    kind: str
    body: str
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceRecord:
    """One instance row. ``output``/``error``/``custom_status`` are JSON text."""

    instance_id: str
    name: str
    version: str
    execution_id: int
    status: InstanceStatus
    output: str | None = None
    error: str | None = None
    custom_status: str | None = None
    parent_instance_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class NewInstance:
    """An instance to create together with its first message.

    Attributes:
        instance_id: The new id.
        name: Orchestration name.
        version: Orchestration version.
        start: The first message, enqueued atomically with the row.
        parent_instance_id: Set for sub-orchestrations.
        on_conflict: Used only inside `TurnCommit`: if the id already
            exists, nothing is created and this message (if any) is enqueued
            to ``on_conflict_target`` instead (a sub-orchestration whose
            explicit id is taken fails its parent instead of hanging).
        on_conflict_target: Instance that receives ``on_conflict``.
    """

    instance_id: str
    name: str
    version: str
    start: Message
    parent_instance_id: str | None = None
    on_conflict: Message | None = None
    on_conflict_target: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationItem:
    """A locked instance with its visible messages (fetch result).

    Attributes:
        instance: The instance row as it is now.
        messages: Every visible message of the instance, in occurrence
            order (``occurred_at``, then arrival): DESIGN §7.
        history_len: Number of history events of ``instance.execution_id``.
        lock_token: Proves ownership in `commit_turns`/`abandon`.
        attempt: How many times this instance has been fetched since its
            last successful commit (1 on a first fetch).
    """

    instance: InstanceRecord
    messages: list[QueuedMessage]
    history_len: int
    lock_token: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityWork:
    """An activity to enqueue. ``body`` holds input and options as JSON text."""

    instance_id: str
    execution_id: int
    event_id: int
    name: str
    body: str
    visible_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityItem:
    """A locked activity work item (fetch result).

    Attributes:
        heartbeat_details: The details last stored for the item by
            `SavesHeartbeats.save_activity_heartbeats` (JSON text, opaque),
            or ``None``; always ``None`` from a provider without that verb.
    """

    id: int
    instance_id: str
    execution_id: int
    event_id: int
    name: str
    body: str
    lock_token: str
    attempt: int
    heartbeat_details: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityHeartbeat:
    """The latest heartbeat details of a held activity item.

    Attributes:
        id: The item (`ActivityItem.id`).
        lock_token: The token it is held with; a stale one writes nothing.
        details: JSON text, opaque to providers.
    """

    id: int
    lock_token: str
    details: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityResult:
    """Completion of a locked activity: delete the item, enqueue ``message``.

    If the item no longer exists or ``lock_token`` no longer holds it (it was
    cancelled, or its lease expired and another worker took it), nothing is
    written: this is how duplicate completions are dropped.
    """

    id: int
    lock_token: str
    instance_id: str
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkRef:
    """Identifies an activity work item by the event that scheduled it."""

    instance_id: str
    execution_id: int
    event_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbound:
    """A message to enqueue for an existing instance (dropped if it is gone)."""

    instance_id: str
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnCommit:
    """Everything one orchestration turn writes, committed atomically.

    Attributes:
        instance_id: The locked instance.
        lock_token: The token from `OrchestrationItem`; if it no longer holds
            the lock, the whole turn is rejected.
        execution_id: Execution the events belong to. When it is greater
            than the stored one (continue-as-new), the instance row moves to
            it and ``history_start`` must be 0.
        history_start: History length the turn was computed against; new
            events carry ids ``history_start + 1 ...``. Another length in
            storage means a concurrent writer: the turn is rejected.
        events: ``(event_id, json_text)`` to append.
        consumed: Ids of the messages the turn processed (deleted).
        activities: Activity work to enqueue.
        cancel_activities: Activity work to delete (queued or running).
        outbound: Messages to other instances (or to itself, e.g. timers).
        drop_messages: ``(instance_id, key)`` of queued messages to delete
            (see `Message.key`); missing ones are ignored.
        new_instances: Sub-orchestrations and detached orchestrations.
        name: Orchestration name to store (set on the first turn).
        version: Orchestration version to store.
        status: Instance status after the turn.
        output: JSON text of the output when Completed.
        error: JSON text of the error when Failed/Cancelled.
        custom_status: JSON text; ``None`` leaves the stored value alone.
    """

    instance_id: str
    lock_token: str
    execution_id: int
    history_start: int
    events: list[tuple[int, str]]
    consumed: list[int]
    activities: list[ActivityWork] = field(default_factory=list)
    cancel_activities: list[WorkRef] = field(default_factory=list)
    outbound: list[Outbound] = field(default_factory=list)
    drop_messages: list[tuple[str, str]] = field(default_factory=list)
    new_instances: list[NewInstance] = field(default_factory=list)
    name: str | None = None
    version: str | None = None
    status: InstanceStatus = "Running"
    output: str | None = None
    error: str | None = None
    custom_status: str | None = None


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

    async def list_instances(
        self, *, status: InstanceStatus | None = None, limit: int = 100
    ) -> list[InstanceRecord]:
        """Return instances, newest first, optionally filtered by status."""

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
