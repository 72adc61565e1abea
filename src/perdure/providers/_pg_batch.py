"""Batched writes on PostgreSQL: turns, activity completions and heartbeats."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from perdure.providers import _pg_raw as raw
from perdure.providers._base import (
    ActivityHeartbeat,
    ActivityResult,
    Message,
    TurnCommit,
)
from perdure.providers._pg_commit_sql import CommitSql
from perdure.providers._unwritable import log_dropped, log_rejected, replacement

__all__ = [
    "ITEM_ERRORS",
    "commit",
    "commit_params",
    "complete",
    "rounds",
    "save_heartbeats",
]

_log = logging.getLogger("perdure.providers.postgres")

# A deadlock with another runtime's commit (or a serialization failure):
# worth trying again. psycopg does not derive them from TransactionRollback.
_CONFLICT = (
    pg_errors.TransactionRollback,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
)
# Errors that belong to one turn or result, not to the storage: stored rows
# contradict it (IntegrityError), or one of its values cannot be sent (a NUL
# in text: DataError; a lone surrogate: UnicodeEncodeError, raised by psycopg
# before anything is sent; an int beyond 64 bits: DataError or OverflowError).
# A lost connection (OperationalError) fails the whole call.
ITEM_ERRORS = (
    pg_errors.IntegrityError,
    psycopg.DataError,
    ValueError,
    OverflowError,
    TypeError,
)
# Errors after which a batch is retried one turn at a time, each in its own
# savepoint: one of the above, or a conflict.
_RETRY_SINGLY = (*ITEM_ERRORS, *_CONFLICT)


async def commit(
    conn: psycopg.AsyncConnection[Any],
    sql: CommitSql,
    release: str,
    wake: dict[str, str],
    turns: Sequence[TurnCommit],
) -> set[int]:
    """Commit *turns* with the commit statements *sql*; return committed indexes.

    Normally one statement (one transaction, one round trip) commits the
    batch. If it fails, the batch is retried turn by turn, each turn in a
    savepoint, so one bad turn is rejected alone, and its lock is released
    with the statement *release* (``abandon_orchestration``) so that it is
    fetched again at once. Savepoints are kept off the normal path: a
    transaction with more than 64 subtransactions slows down every other
    session's snapshots.
    """
    try:
        batches = rounds(turns)
        if len(batches) == 1:
            return await _execute(conn, sql, wake, turns, batches[0])
        committed: set[int] = set()
        async with conn.transaction():
            for indexes in batches:
                committed |= await _execute(conn, sql, wake, turns, indexes)
        return committed
    except _RETRY_SINGLY as exc:
        _log.info("batch commit failed (%s); committing turn by turn", exc)
    committed = set()
    async with conn.transaction():
        for index in range(len(turns)):
            for _ in range(3):
                try:
                    async with conn.transaction():  # a savepoint
                        committed |= await _execute(conn, sql, wake, turns, [index])
                except _CONFLICT:
                    continue  # deadlock: only this turn was undone; again
                except pg_errors.IntegrityError:
                    pass  # stored rows contradict the turn: reject it
                except ITEM_ERRORS as exc:
                    # Only this turn was undone; it cannot be written.
                    turn = turns[index]
                    log_rejected(turn.instance_id, exc)
                    params = {"iid": turn.instance_id, "token": turn.lock_token}
                    await conn.execute(release, {**params, "delay": 0.0, **wake})
                break
    return committed


async def complete(
    conn: psycopg.AsyncConnection[Any],
    sql: str,
    wake: dict[str, str],
    results: Sequence[ActivityResult],
) -> int:
    """Send completions with the statement *sql*; return how many were delivered.

    Normally one statement. If a value in it cannot be sent, each result is
    sent alone, and one that still fails is replaced (see
    `perdure.providers._unwritable.replacement`) or dropped.
    """
    try:
        return await _complete(conn, sql, wake, results)
    except ITEM_ERRORS:
        pass
    sent = 0
    for result in results:
        try:
            sent += await _complete(conn, sql, wake, [result])
        except ITEM_ERRORS as exc:
            instead = replacement(result, exc)
            try:
                if instead is not None:
                    sent += await _complete(conn, sql, wake, [instead])
                    continue
            except ITEM_ERRORS:
                pass
            log_dropped(result, exc)
    return sent


async def save_heartbeats(
    conn: psycopg.AsyncConnection[Any], sql: str, beats: Sequence[ActivityHeartbeat]
) -> list[int]:
    """Run `PgSql.save_heartbeats` for *beats* in one statement.

    Of several beats for one item and token in a batch, the last one is
    stored (as when they are written one after the other).

    Returns:
        Ids of the items not held under the beat's token.
    """
    unique = list({(beat.id, beat.lock_token): beat for beat in beats}.values())
    if not unique:
        return []
    cursor = await conn.execute(
        sql,
        {
            "ids": [beat.id for beat in unique],
            "tokens": [beat.lock_token for beat in unique],
            "details": [beat.details for beat in unique],
        },
    )
    return [row[0] for row in await cursor.fetchall()]


async def _complete(
    conn: psycopg.AsyncConnection[Any],
    sql: str,
    wake: dict[str, str],
    results: Sequence[ActivityResult],
) -> int:
    rows = _Rows("id token iid kind body vis key pos")
    for r in results:
        m = r.message
        rows.add(r.id, r.lock_token, r.instance_id, m.kind, m.body, m.visible_at, m.key)
    got = await raw.fetch(conn, sql, {"r": rows.dumps(), "n": len(rows.rows), **wake})
    # The statement returns (delivered, woken); only the first is ours.
    return int(got[0][0] or 0)


async def _execute(
    conn: psycopg.AsyncConnection[Any],
    sql: CommitSql,
    wake: dict[str, str],
    turns: Sequence[TurnCommit],
    indexes: Sequence[int],
) -> set[int]:
    params = commit_params(turns, indexes)
    ends = any(
        turns[i].status != "Running" or turns[i].custom_status is not None
        for i in indexes
    )
    rows = await raw.fetch(conn, sql.text(params, ends), {**params, **wake})
    committed, _, tokens, ids = json.loads(rows[0][0] or "null")
    if tokens:
        _answer_claims(turns, indexes, dict(zip(tokens, ids, strict=True)))
    return set(committed)


def _answer_claims(
    turns: Sequence[TurnCommit], indexes: Sequence[int], ids: dict[str, int]
) -> None:
    """Tell each `ActivityClaim` of the committed turns its item's id."""
    for index in indexes:
        for work in turns[index].activities:
            if work.claim is not None:
                work.claim.id = ids.get(work.claim.lock_token)


def rounds(turns: Sequence[TurnCommit]) -> list[list[int]]:
    """Split turn indexes into rounds a single statement can commit.

    One statement sees one snapshot and cannot update a row twice, so within
    a round every instance has at most one turn and every new instance id is
    created by at most one turn. Later rounds run afterwards in the same
    transaction and so see what earlier ones wrote, as sequential commits
    would. The runtime never sends such duplicates; a batch is one round.
    """
    result: list[list[int]] = []
    claimed: list[set[str]] = []
    for index, turn in enumerate(turns):
        ids = {f"i:{turn.instance_id}"} | {
            f"n:{n.instance_id}" for n in turn.new_instances
        }
        for position, taken in enumerate(claimed):
            if not ids & taken:
                result[position].append(index)
                taken |= ids
                break
        else:
            result.append([index])
            claimed.append(set(ids))
    return result


# Message modes of the commit statement's "sent" step.
_OUTBOUND, _CHILD_START, _ON_CONFLICT = 0, 1, 2


class _Rows:
    """The rows of one group (``t``, ``e``...), sent as one JSON parameter.

    One ``json`` parameter per group instead of one array per column: psycopg
    dumps a Python list element by element in Python (56 arrays made ~0.4 ms
    of client CPU per commit), while `json.dumps` runs in C and the server's
    ``json_to_recordset`` reads the rows back typed by the statement. A value
    PostgreSQL cannot store still fails the statement (a NUL in text: an
    untranslatable-character `psycopg.DataError`; a lone surrogate: a
    `UnicodeEncodeError` when the parameter is encoded).
    """

    __slots__ = ("names", "ordered", "rows")

    def __init__(self, names: str | tuple[str, ...]) -> None:
        self.names = tuple(names.split()) if isinstance(names, str) else names
        # "pos": the row's position, for groups inserted in order.
        self.ordered = self.names[-1] == "pos"
        self.rows: list[dict[str, Any]] = []

    def add(self, *values: Any) -> None:
        if self.ordered:
            values = (*values, len(self.rows))
        self.rows.append(dict(zip(self.names, values, strict=True)))

    def dumps(self) -> str:
        return _dumps(self.rows) if self.rows else "[]"


_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


#: Each row group's columns, as the commit statement reads them.
_COLUMNS = {
    name: tuple(columns.split())
    for name, columns in {
        "t": "idx iid token exec hstart hlen name version status output error"
        " custom vals",
        "e": "idx iid exec eid data",
        "c": "idx iid id",
        "a": "idx id token",
        "w": "idx iid exec eid name body vis token lease tag session priority pos",
        "k": "idx iid exec eid",
        "n": "idx iid name version parent pos",
        "q": "idx mode child target kind body vis key pos",
        "d": "idx iid key",
    }.items()
}


def commit_params(
    turns: Sequence[TurnCommit], indexes: Sequence[int]
) -> dict[str, Any]:
    """Parameters committing ``turns[i]`` for each ``i`` in *indexes*.

    One JSON text per row group, and ``one``, the instance id, when
    *indexes* holds one turn.

    Work scheduled and cancelled within one turn, and keyed messages sent
    and dropped within one turn, are left out here: the statement's steps
    cannot see each other's rows, and sequentially they would cancel out.
    """
    groups = {name: _Rows(columns) for name, columns in _COLUMNS.items()}
    for idx in indexes:
        _add_turn(groups, idx, turns[idx])
    params = {name: group.dumps() for name, group in groups.items()}
    if len(indexes) == 1:
        # A batch of one turn names its instance: the statement then reaches
        # its row by the key whatever the table's size (_pg_commit_sql).
        params["one"] = turns[indexes[0]].instance_id
    return params


def _add_turn(groups: dict[str, _Rows], idx: int, turn: TurnCommit) -> None:
    iid, execution_id = turn.instance_id, turn.execution_id
    groups["t"].add(
        idx,
        iid,
        turn.lock_token,
        execution_id,
        turn.history_start,
        turn.history_start + len(turn.events),
        turn.name,
        turn.version,
        turn.status,
        turn.output,
        turn.error,
        turn.custom_status,
        turn.state_values,
    )
    for event_id, data in turn.events:
        groups["e"].add(idx, iid, execution_id, event_id, data)
    for message_id in turn.consumed:
        groups["c"].add(idx, iid, message_id)
    for item_id, token in turn.acks:
        groups["a"].add(idx, item_id, token)
    cancelled = {
        (ref.instance_id, ref.execution_id, ref.event_id)
        for ref in turn.cancel_activities
    }
    for work in turn.activities:
        ref_key = (work.instance_id, work.execution_id, work.event_id)
        if ref_key not in cancelled:
            claim = work.claim if work.visible_at is None else None
            groups["w"].add(
                idx,
                *ref_key,
                work.name,
                work.body,
                work.visible_at,
                None if claim is None else claim.lock_token,
                None if claim is None else claim.lease,
                work.tag,
                work.session,
                work.priority,
            )
    for ref in turn.cancel_activities:
        groups["k"].add(idx, ref.instance_id, ref.execution_id, ref.event_id)
    dropped = set(turn.drop_messages)

    def send(mode: int, child: str | None, target: str, msg: Message) -> None:
        if msg.key is None or (target, msg.key) not in dropped:
            groups["q"].add(
                idx, mode, child, target, msg.kind, msg.body, msg.visible_at, msg.key
            )

    for new in turn.new_instances:
        groups["n"].add(
            idx, new.instance_id, new.name, new.version, new.parent_instance_id
        )
        send(_CHILD_START, new.instance_id, new.instance_id, new.start)
        if new.on_conflict is not None and new.on_conflict_target is not None:
            send(_ON_CONFLICT, new.instance_id, new.on_conflict_target, new.on_conflict)
    for out in turn.outbound:
        send(_OUTBOUND, None, out.instance_id, out.message)
    for target, key in turn.drop_messages:
        groups["d"].add(idx, target, key)
