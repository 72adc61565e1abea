"""How the SQLite provider writes a turn and an activity acknowledgement.

Called inside the provider's write transaction (see
`perdure.providers._sqlite_conn`): `apply_turn` is one turn with its guard,
`apply_isolated` the same inside a savepoint for the slow path, and `ack` /
`ack_isolated` one activity completion.
"""

from __future__ import annotations

import sqlite3

from perdure.providers._base import (
    ActivityResult,
    ActivityWork,
    NewInstance,
    TurnCommit,
)
from perdure.providers._sqlite_schema import (
    COMMIT_INSTANCE,
    COMMIT_UNLOCKED,
    INSERT_ACTIVITY,
    INSERT_CLAIMED,
    INSERT_EVENT,
    INSERT_INSTANCE,
    INSERT_MESSAGE,
    INSERT_MESSAGE_IF_INSTANCE,
    STEP_INSTANCE,
    STEP_UNLOCKED,
    message_row,
)
from perdure.providers._unwritable import log_dropped, log_rejected, replacement

__all__ = ["ITEM_ERRORS", "ack", "ack_isolated", "apply_isolated", "apply_turn"]

# Errors that belong to one turn or result, not to the storage: stored rows
# contradict it (IntegrityError), or the driver refuses one of its values (a
# lone surrogate: UnicodeEncodeError; an int beyond 64 bits: OverflowError;
# an unsupported type: ProgrammingError). Disk full, locked or corrupt
# databases (OperationalError, DatabaseError) fail the whole call.
ITEM_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    ValueError,
    OverflowError,
    TypeError,
)


def apply_isolated(conn: sqlite3.Connection, now: float, turn: TurnCommit) -> bool:
    """`apply_turn` in a savepoint: an error rejects this turn alone."""
    conn.execute("SAVEPOINT turn")
    try:
        ok = apply_turn(conn, now, turn)
    except sqlite3.IntegrityError:
        # Stored rows contradict the turn (e.g. events already there):
        # reject this turn alone, as for a stale lock (lock kept).
        conn.execute("ROLLBACK TO turn")
        ok = False
    except ITEM_ERRORS as exc:
        # This turn alone cannot be written: reject it, and release its
        # lock (if still held) so that the instance is fetched again at
        # once; its attempt counter then turns it into poison.
        conn.execute("ROLLBACK TO turn")
        log_rejected(turn.instance_id, exc)
        conn.execute(
            "UPDATE instances SET lock_token = NULL, locked_until = NULL"
            " WHERE instance_id = ? AND lock_token = ?",
            (turn.instance_id, turn.lock_token),
        )
        ok = False
    else:
        if not ok:
            conn.execute("ROLLBACK TO turn")
    conn.execute("RELEASE turn")
    return ok


def apply_turn(conn: sqlite3.Connection, now: float, turn: TurnCommit) -> bool:
    """Write one turn if its guard holds; ``False`` (nothing written) if not.

    The guard is `COMMIT_INSTANCE`: lock held, and the stored history the
    one the turn was computed against (`COMMIT_UNLOCKED` for a turn run
    without the lock); every acknowledged item still held. A turn that
    sets no name or version first tries `STEP_INSTANCE` / `STEP_UNLOCKED`,
    the same guard and writes for a turn that keeps the stored status
    (nothing indexed is set). Write order follows the commit rules of
    `perdure.providers._base`.
    """
    if turn.acks and not _acks_held(conn, turn.acks):
        return False
    locked = turn.lock_token is not None
    params = {
        "instance_id": turn.instance_id,
        "lock_token": turn.lock_token,
        "execution_id": turn.execution_id,
        "history_start": turn.history_start,
        "history_len": turn.history_start + len(turn.events),
        "name": turn.name,
        "version": turn.version,
        "status": turn.status,
        "output": turn.output,
        "error": turn.error,
        "custom_status": turn.custom_status,
        "state_values": turn.state_values,
        "now": now,
    }
    guard = None
    if turn.name is None and turn.version is None:
        # Most turns keep the stored status: no index pages rewritten.
        guard = conn.execute(STEP_INSTANCE if locked else STEP_UNLOCKED, params)
    if guard is None or guard.rowcount != 1:
        guard = conn.execute(COMMIT_INSTANCE if locked else COMMIT_UNLOCKED, params)
    if guard.rowcount != 1:
        return False
    instance_id, execution_id = turn.instance_id, turn.execution_id
    if turn.events:
        conn.executemany(
            INSERT_EVENT,
            [(instance_id, execution_id, eid, data) for eid, data in turn.events],
        )
    if turn.acks:
        conn.executemany(
            "DELETE FROM activities WHERE id = ? AND lock_token = ?", turn.acks
        )
    if turn.consumed:
        conn.executemany(
            "DELETE FROM messages WHERE id = ? AND instance_id = ?",
            [(message_id, instance_id) for message_id in turn.consumed],
        )
    # Inserts before deletes: work scheduled and cancelled (or a timer
    # set and dropped) within the same turn must end up gone.
    if turn.activities:
        claimed = [w for w in turn.activities if _claimed(w)]
        conn.executemany(
            INSERT_ACTIVITY,
            [
                (
                    w.instance_id,
                    w.execution_id,
                    w.event_id,
                    w.name,
                    w.body,
                    now if w.visible_at is None else w.visible_at,
                    w.tag,
                    w.session,
                    w.priority,
                )
                for w in turn.activities
                if not _claimed(w)
            ],
        )
        for w in claimed:
            claim = w.claim
            assert claim is not None
            row = conn.execute(
                INSERT_CLAIMED,
                (
                    w.instance_id,
                    w.execution_id,
                    w.event_id,
                    w.name,
                    w.body,
                    now + claim.lease,
                    claim.lock_token,
                    w.tag,
                    w.session,
                    w.priority,
                ),
            ).fetchone()
            # Set before the commit; only read by the caller if it commits.
            claim.id = None if row is None else row[0]
    if turn.cancel_activities:
        conn.executemany(
            "DELETE FROM activities"
            " WHERE instance_id = ? AND execution_id = ? AND event_id = ?",
            [
                (r.instance_id, r.execution_id, r.event_id)
                for r in turn.cancel_activities
            ],
        )
    # New instances before outbound, so a message to a child created by
    # this very turn is delivered.
    for child in turn.new_instances:
        create_child(conn, now, child)
    if turn.outbound:
        conn.executemany(
            INSERT_MESSAGE_IF_INSTANCE,
            [message_row(o.instance_id, o.message, now) for o in turn.outbound],
        )
    if turn.drop_messages:
        conn.executemany(
            "DELETE FROM messages WHERE instance_id = ? AND key = ?",
            turn.drop_messages,
        )
    return True


def _claimed(work: ActivityWork) -> bool:
    return work.claim is not None and work.visible_at is None


def _acks_held(conn: sqlite3.Connection, acks: list[tuple[int, str]]) -> bool:
    """Whether every acknowledged item is still held under its token."""
    for item_id, token in acks:
        row = conn.execute(
            "SELECT 1 FROM activities WHERE id = ? AND lock_token = ?",
            (item_id, token),
        ).fetchone()
        if row is None:
            return False
    return True


def create_child(conn: sqlite3.Connection, now: float, new: NewInstance) -> None:
    """Create a sub-orchestration, or send ``on_conflict`` if the id is taken."""
    created = conn.execute(
        INSERT_INSTANCE,
        (new.instance_id, new.name, new.version, new.parent_instance_id, now, now),
    )
    if created.rowcount == 1:
        conn.execute(INSERT_MESSAGE, message_row(new.instance_id, new.start, now))
    elif new.on_conflict is not None and new.on_conflict_target is not None:
        conn.execute(
            INSERT_MESSAGE_IF_INSTANCE,
            message_row(new.on_conflict_target, new.on_conflict, now),
        )


def ack(conn: sqlite3.Connection, now: float, result: ActivityResult) -> int:
    """Delete a held item and enqueue its completion; 0 if it is not held."""
    held = conn.execute(
        "DELETE FROM activities WHERE id = ? AND lock_token = ?",
        (result.id, result.lock_token),
    )
    if held.rowcount != 1:
        return 0
    conn.execute(
        INSERT_MESSAGE_IF_INSTANCE,
        message_row(result.instance_id, result.message, now),
    )
    return 1


def ack_isolated(conn: sqlite3.Connection, now: float, result: ActivityResult) -> int:
    """`ack` in a savepoint; an unwritable result is replaced or dropped."""
    conn.execute("SAVEPOINT ack")
    try:
        return ack(conn, now, result)
    except ITEM_ERRORS as exc:
        conn.execute("ROLLBACK TO ack")
        instead = replacement(result, exc)
        try:
            if instead is not None:
                return ack(conn, now, instead)
        except ITEM_ERRORS:
            conn.execute("ROLLBACK TO ack")
        log_dropped(result, exc)
        return 0
    finally:
        conn.execute("RELEASE ack")
