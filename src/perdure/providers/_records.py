"""The records providers store and return: frozen values, no behaviour.

`perdure.providers._base` states the contract around them (the `Provider`
protocol and its ordering rules) and re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ActivityClaim",
    "ActivityHeartbeat",
    "ActivityItem",
    "ActivityLimit",
    "ActivityResult",
    "ActivityRouting",
    "ActivityWork",
    "Channel",
    "Handlers",
    "InstanceBatch",
    "InstanceQuery",
    "InstanceRecord",
    "InstanceStatus",
    "Message",
    "NewInstance",
    "OrchestrationItem",
    "Outbound",
    "QueuedMessage",
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
class InstanceQuery:
    """Which instances `Provider.query_instances` returns, one page at a time.

    Every filter is optional; they combine with AND. Pages are newest
    first (instances created at the same time: the later-created first).

    Attributes:
        status: Only instances with this status.
        name: Only instances of this orchestration name.
        version: Only instances of this orchestration version.
        created_after: Only instances created at or after this Unix time.
        created_before: Only instances created before this Unix time.
        limit: Page size (at least 1).
        cursor: Where the page starts: the ``next_cursor`` of the page
            before (same provider, same filters); ``None`` for the first.
    """

    status: InstanceStatus | None = None
    name: str | None = None
    version: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceBatch:
    """One page of `Provider.query_instances`.

    Attributes:
        records: The instances, newest first.
        next_cursor: The cursor of the next page, ``None`` if this is the
            last. Opaque, valid for the provider that returned it; a page
            stays correct when instances are created or deleted meanwhile
            (keyset paging: none is skipped or returned twice).
    """

    records: list[InstanceRecord]
    next_cursor: str | None


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


@dataclass(eq=False, slots=True)
class ActivityClaim:
    """A request to insert an activity item already held by the committer.

    The runtime whose turn schedules an activity runs it itself when its
    worker has room: the item is inserted held under ``lock_token`` for
    ``lease`` seconds (attempt 1) and handed to that worker, so no fetch
    is needed. Not a value but a reply slot (hence not frozen):
    ``commit_turns`` sets ``id`` to the new item's id; read it only if the
    turn committed (``None`` then means the item already existed).
    """

    lock_token: str
    lease: float
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityWork:
    """An activity to enqueue. ``body`` holds input and options as JSON text.

    Attributes:
        claim: Insert the item held by the committing runtime's worker
            (see `ActivityClaim`); ignored when ``visible_at`` is set. The
            runtime claims only items without a tag or session, of
            activities it registered without limits (docs/routing.md).
        tag: Only a fetch whose `ActivityRouting.tags` hold it takes the
            item; ``None``: any fetch that takes its name.
        session: Items of one session go to one owner while its session
            lease lives (`ActivityRouting.owner`); ``None``: no affinity.
        priority: Visible items are fetched highest priority first.
    """

    instance_id: str
    execution_id: int
    event_id: int
    name: str
    body: str
    visible_at: float | None = None
    claim: ActivityClaim | None = None
    tag: str | None = None
    session: str | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityItem:
    """A locked activity work item (fetch result).

    Attributes:
        heartbeat_details: The details last stored for the item by
            `SavesHeartbeats.save_activity_heartbeats` (JSON text, opaque),
            or ``None``; always ``None`` from a provider without that verb.
        session: The item's `ActivityWork.session` (its owner renews it).
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
    session: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityLimit:
    """Flow control of one activity name, across every runtime of a storage.

    Attributes:
        name: The activity.
        concurrency: At most this many items of the name leased at once
            (``None``: no limit).
        rate: At most this many fetches (attempts started) of the name in
            any window of ``per`` seconds (``None``: no limit).
        per: The rate window, in seconds.
    """

    name: str
    concurrency: int | None = None
    rate: int | None = None
    per: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityRouting:
    """What one runtime's `Provider.fetch_activities` may take.

    Attributes:
        names: The activity names the runtime registered: no other item is
            fetched (it waits for a runtime that has its name).
        tags: The tags the runtime serves: a tagged item is fetched only by
            a runtime with its tag; untagged items by any.
        limits: The runtime's `ActivityLimit` per limited name, enforced
            against the items leased (and started) by *every* runtime.
        owner: Identifies the runtime for session affinity: an item with a
            session is fetched only by the session's owner while its lease
            lives (`Provider.renew_activity_sessions`), and the fetch that
            takes a free session becomes its owner.
    """

    names: tuple[str, ...]
    tags: frozenset[str] = frozenset()
    limits: tuple[ActivityLimit, ...] = ()
    owner: str = ""


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
            the lock, the whole turn is rejected. ``None``: the turn ran
            without fetching the instance (a runtime fed it an activity
            result it holds, see ``acks``): it commits only if nobody holds
            the instance's lock and no message of the instance is due (one
            would have come first, DESIGN §7), and takes no lock.
        execution_id: Execution the events belong to. When it is greater
            than the stored one (continue-as-new), the instance row moves to
            it and ``history_start`` must be 0.
        history_start: History length the turn was computed against; new
            events carry ids ``history_start + 1 ...``. Another length in
            storage means a concurrent writer: the turn is rejected.
        events: ``(event_id, json_text)`` to append.
        consumed: Ids of the messages the turn processed (deleted).
        acks: ``(id, lock_token)`` of held activity items whose results the
            turn consumed without their completion message ever being
            stored (a fused acknowledgement: one commit, not two). The turn
            commits only if every one is still held under its token; they
            are deleted with it.
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
        state_values: JSON text of the instance's values (an object, see
            `Provider.read_values`); ``None`` leaves the stored ones alone.
    """

    instance_id: str
    lock_token: str | None
    execution_id: int
    history_start: int
    events: list[tuple[int, str]]
    consumed: list[int]
    acks: list[tuple[int, str]] = field(default_factory=list)
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
    state_values: str | None = None
