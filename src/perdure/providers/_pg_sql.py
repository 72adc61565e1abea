"""SQL text of the PostgreSQL provider, built once per schema.

Every hot-path verb is one statement (one round trip): data-modifying CTEs
chain the steps, array or JSON parameters carry whole batches, and
the ``NOTIFY`` that wakes other processes is part of the same statement, so
it is sent exactly when the write commits.

Time: ``NOW`` is the database clock (``statement_timestamp()``, stable
within a statement, so it can use indexes). Leases, enqueue times and retry
delays are all computed with it, which makes them mean the same thing on
every machine. The ``visible_at`` values the runtime supplies (timer fire
times) are computed from `PostgresProvider.clock`, the database clock as
seen from the runtime, so all occurrence times come from one clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perdure.providers._base import Message, NewInstance, QueuedMessage
from perdure.providers._pg_commit_sql import CommitSql
from perdure.providers._pg_members import ALIVE, FRESH
from perdure.providers._pg_schema import quote_ident
from perdure.providers._pg_wake import NOW, PRIVATE, SPARE_FOR, wake
from perdure.providers.helpers import INSTANCE_COLUMNS

# Version routing: an instance (alias i) whose (name, version) is among the
# handlers, or whose version is still "" and whose name is (its first turn
# picks one). Parameters: `_pg_routing.handler_params`.
HANDLED = (
    "((i.name, i.version) IN (SELECT * FROM unnest(%(h_names)s::text[],"
    " %(h_versions)s::text[]))"
    " OR (i.version = '' AND i.name = ANY(%(h_names)s::text[])))"
)

__all__ = [
    "NOW",
    "PgSql",
    "SPARE_FOR",
    "message_params",
    "queued_messages",
]


@dataclass(frozen=True, slots=True)
class PgSql:
    """The statements, qualified with one schema."""

    create_instance: str
    enqueue: str
    get_instance: str
    list_all: str
    list_status: str
    read_history: str
    delete_root: str
    delete_children: str
    delete_steps: tuple[str, ...]
    fetch_orchestrations: str
    reread_messages: str
    unfetch: str
    commit: CommitSql
    abandon_orchestration: str
    fetch_activities: str
    complete_activities: str
    abandon_activity: str
    renew_activities: str
    save_heartbeats: str

    @classmethod
    def for_schema(cls, schema: str) -> PgSql:
        """Build every statement for *schema*."""
        s = quote_ident(schema)
        return cls(
            create_instance=_create_instance(s),
            enqueue=(
                f"WITH sent AS (INSERT INTO {s}.messages"
                " (instance_id, kind, body, visible_at, key, occurred_at)"
                " SELECT %(iid)s, %(kind)s, %(body)s,"
                f" coalesce(%(vis)s, {NOW}), %(key)s, coalesce(%(vis)s, {NOW})"
                f" WHERE EXISTS (SELECT 1 FROM {s}.instances"
                " WHERE instance_id = %(iid)s) RETURNING visible_at), "
                + wake(
                    (
                        "ch_orch",
                        f"EXISTS (SELECT 1 FROM sent WHERE visible_at <= {NOW})",
                    )
                )
                + " SELECT (SELECT count(*) FROM sent), (SELECT count(*) FROM wake)"
            ),
            get_instance=(
                f"SELECT {INSTANCE_COLUMNS} FROM {s}.instances"
                " WHERE instance_id = %(iid)s"
            ),
            list_all=(
                f"SELECT {INSTANCE_COLUMNS} FROM {s}.instances"
                " ORDER BY created_at DESC, seq DESC LIMIT %(limit)s"
            ),
            list_status=(
                f"SELECT {INSTANCE_COLUMNS} FROM {s}.instances"
                " WHERE status = %(status)s"
                " ORDER BY created_at DESC, seq DESC LIMIT %(limit)s"
            ),
            read_history=(
                f"SELECT data FROM {s}.history WHERE instance_id = %(iid)s"
                " AND execution_id = coalesce(%(exec)s::bigint,"
                f" (SELECT execution_id FROM {s}.instances"
                " WHERE instance_id = %(iid)s))"
                " ORDER BY event_id"
            ),
            # Rows first, one level of the tree per statement: deleting a
            # row waits for any commit in flight on that instance, and the
            # next statement (a new snapshot) then sees the children that
            # commit created. The other tables follow, with new snapshots.
            delete_root=(
                f"DELETE FROM {s}.instances WHERE instance_id = %(iid)s"
                " RETURNING instance_id"
            ),
            delete_children=(
                f"DELETE FROM {s}.instances"
                " WHERE parent_instance_id = ANY(%(ids)s::text[])"
                " RETURNING instance_id"
            ),
            delete_steps=(
                f"DELETE FROM {s}.history WHERE instance_id = ANY(%(ids)s::text[])",
                f"DELETE FROM {s}.messages WHERE instance_id = ANY(%(ids)s::text[])",
                f"DELETE FROM {s}.activities WHERE instance_id = ANY(%(ids)s::text[])",
                "SELECT pg_notify(%(ch_inst)s, %(origin)s)",
            ),
            fetch_orchestrations=_fetch_orchestrations(s),
            reread_messages=(
                "SELECT instance_id, array_agg(id ORDER BY occurred_at, id),"
                " array_agg(kind ORDER BY occurred_at, id),"
                " array_agg(body ORDER BY occurred_at, id),"
                " array_agg(occurred_at ORDER BY occurred_at, id)"
                f" FROM {s}.messages WHERE instance_id = ANY(%(iids)s::text[])"
                f" AND visible_at <= {NOW} GROUP BY instance_id"
            ),
            unfetch=(
                f"UPDATE {s}.instances SET lock_token = NULL, locked_until = NULL,"
                " owner = NULL, attempt = greatest(attempt - 1, 0)"
                " WHERE instance_id = %(iid)s AND lock_token = %(token)s"
            ),
            commit=CommitSql(s),
            abandon_orchestration=(
                f"WITH released AS (UPDATE {s}.instances"
                " SET lock_token = NULL, locked_until = NULL, owner = NULL"
                " WHERE instance_id = %(iid)s AND lock_token = %(token)s"
                " RETURNING instance_id),"
                f" delayed AS (UPDATE {s}.messages SET visible_at = {NOW} + %(delay)s"
                " WHERE %(delay)s > 0 AND instance_id IN"
                f" (SELECT instance_id FROM released) AND visible_at <= {NOW}), "
                + wake(
                    ("ch_orch", "%(delay)s <= 0 AND EXISTS (SELECT 1 FROM released)")
                )
                + " SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM wake)"
            ),
            fetch_activities=(
                f"WITH picked AS (SELECT id FROM {s}.activities"
                f" WHERE visible_at <= {NOW} ORDER BY visible_at, id"
                " LIMIT %(n)s FOR UPDATE SKIP LOCKED)"
                f" UPDATE {s}.activities a SET lock_token = gen_random_uuid()::text,"
                f" visible_at = {NOW} + %(lease)s, attempt = a.attempt + 1"
                " FROM picked WHERE a.id = picked.id"
                " RETURNING a.id, a.instance_id, a.execution_id, a.event_id, a.name,"
                " a.body, a.lock_token, a.attempt, a.heartbeat_details"
            ),
            complete_activities=_complete_activities(s),
            abandon_activity=(
                f"WITH released AS (UPDATE {s}.activities"
                f" SET lock_token = NULL, visible_at = {NOW} + %(delay)s"
                " WHERE id = %(id)s AND lock_token = %(token)s RETURNING id), "
                + wake(("ch_act", "%(delay)s <= 0 AND EXISTS (SELECT 1 FROM released)"))
                + " SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM wake)"
            ),
            # Rows another statement is writing right now (an acknowledgement
            # deleting a batch in its own order) are skipped, not waited for:
            # waiting deadlocked (seen in the soak); they are renewed next
            # time if still held. Lost: no longer held under the token.
            renew_activities=(
                "WITH held AS (SELECT * FROM unnest(%(ids)s::bigint[],"
                " %(tokens)s::text[]) AS h(id, token)),"
                f" locked AS (SELECT a.id FROM {s}.activities a JOIN held"
                " ON a.id = held.id AND a.lock_token = held.token ORDER BY a.id"
                " FOR UPDATE OF a SKIP LOCKED),"
                f" renewed AS (UPDATE {s}.activities a"
                f" SET visible_at = {NOW} + %(lease)s FROM locked"
                " WHERE a.id = locked.id RETURNING a.id)"
                " SELECT id FROM held WHERE NOT EXISTS (SELECT 1 FROM"
                f" {s}.activities a WHERE a.id = held.id AND a.lock_token = held.token)"
            ),
            save_heartbeats=(
                "WITH beats AS (SELECT * FROM unnest(%(ids)s::bigint[],"
                " %(tokens)s::text[], %(details)s::text[]) AS b(id, token, details)),"
                f" saved AS (UPDATE {s}.activities a"
                " SET heartbeat_details = beats.details FROM beats"
                " WHERE a.id = beats.id AND a.lock_token = beats.token"
                " RETURNING a.id, a.lock_token)"
                " SELECT b.id FROM beats b WHERE NOT EXISTS (SELECT 1 FROM saved"
                " WHERE saved.id = b.id AND saved.lock_token = b.token)"
            ),
        )


def _create_instance(s: str) -> str:
    # home: a live runtime (_pg_members); it owns the new instance, so only
    # it is woken (if asleep) and the others leave it alone for "affinity"
    # seconds. No live runtime: no owner, and the wake-up goes to everyone.
    return (
        f"WITH home AS (SELECT origin, idle FROM {s}.runtimes"
        # Packed, not spread: a busy runtime that keeps up, else an idle
        # one, else one that is behind; among equals always the same one
        # (md5 of its name), so that a load one runtime carries stays on it
        # and is batched there (_pg_members).
        f" WHERE seen_at > {NOW} - {ALIVE} ORDER BY behind"
        # A busy runtime not heard from lately may have died: as if behind.
        f" OR (NOT idle AND seen_at < {NOW} - {FRESH}), idle, md5(origin)"
        " LIMIT 1"
        # FOR SHARE: a home going idle waits for this start to commit and
        # then looks again; one that went idle first is seen idle here.
        " FOR SHARE),"
        f" made AS (INSERT INTO {s}.instances (instance_id, name, version,"
        " execution_id, status, parent_instance_id, created_at, updated_at, owner)"
        " VALUES (%(iid)s, %(name)s, %(version)s, 1, 'Running', %(parent)s,"
        f" {NOW}, {NOW}, (SELECT origin FROM home))"
        " ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id),"
        f" sent AS (INSERT INTO {s}.messages (instance_id, kind, body, visible_at, key,"
        " occurred_at) SELECT instance_id, %(kind)s, %(body)s,"
        f" coalesce(%(vis)s, {NOW}), %(key)s, coalesce(%(vis)s, {NOW})"
        " FROM made RETURNING visible_at), "
        + wake(
            # No "instances" wake-up: a new instance is Running, which no
            # waiter waits for, and every NOTIFY costs each LISTENing
            # backend a transaction.
            ("ch_inst", "false"),
            extra=(
                f"SELECT pg_notify(coalesce('{PRIVATE}' || (SELECT origin FROM home),"
                " %(ch_orch)s), %(origin)s || ':'"
                " || coalesce((SELECT origin FROM home), ''))"
                f" WHERE EXISTS (SELECT 1 FROM sent WHERE visible_at <= {NOW})"
                # A busy home fetches again by itself (_pg_members).
                " AND coalesce((SELECT idle FROM home), true)"
            ),
        )
        + " SELECT (SELECT count(*) FROM made), (SELECT count(*) FROM wake)"
    )


def _fetch_orchestrations(s: str) -> str:
    # cand: unlocked instances with due messages, oldest due message first
    # (statement snapshot). Affinity: an instance another provider object
    # fetched last (owner) is left to it until its oldest due message is
    # "affinity" seconds old, so that the owner's cached driver runs the
    # turn instead of a replay elsewhere; then anyone may take it.
    # picked: lock them, skipping rows another fetch holds; FOR UPDATE
    # rechecks the lease on the newest row version. "fresh" is false when
    # that version is not the snapshot's (a turn committed in between): the
    # snapshot's messages may then be consumed already, so the caller
    # re-reads them under the lock instead.
    return (
        "WITH cand AS (SELECT i.instance_id, min(m.visible_at) AS due,"
        " min(m.id) AS first_id, i.xmin::text AS seen"
        f" FROM {s}.messages m JOIN {s}.instances i ON i.instance_id = m.instance_id"
        f" WHERE m.visible_at <= {NOW}"
        f" AND (i.locked_until IS NULL OR i.locked_until < {NOW})"
        # Version routing (DESIGN §9); Suspended instances wait for resume.
        " AND i.status <> 'Suspended'"
        # Not started yet (a delayed start): events and cancels sent
        # meanwhile wait until the start message is due.
        " AND (i.history_len > 0 OR m.kind IN ('start', 'continue_as_new'))"
        f" AND (%(h_any)s OR i.status <> 'Running' OR {HANDLED})"
        " GROUP BY i.instance_id"
        " HAVING i.owner IS NULL OR i.owner = %(me)s"
        f" OR min(m.visible_at) <= {NOW} - %(affinity)s"
        " ORDER BY due, first_id LIMIT %(scan)s),"
        " picked AS (SELECT i.instance_id, i.xmin::text AS now_seen, c.due,"
        f" c.first_id, c.seen FROM {s}.instances i JOIN cand c"
        " ON c.instance_id = i.instance_id"
        f" WHERE i.locked_until IS NULL OR i.locked_until < {NOW}"
        " ORDER BY c.due, c.first_id LIMIT %(n)s FOR UPDATE OF i SKIP LOCKED),"
        f" locked AS (UPDATE {s}.instances i"
        " SET lock_token = gen_random_uuid()::text,"
        f" locked_until = {NOW} + %(lease)s, attempt = i.attempt + 1,"
        " owner = %(me)s"
        " FROM picked p WHERE i.instance_id = p.instance_id"
        " RETURNING i.instance_id, i.name, i.version, i.execution_id, i.status,"
        " i.output, i.error, i.custom_status, i.parent_instance_id, i.created_at,"
        " i.updated_at, i.history_len, i.lock_token, i.attempt, p.due, p.first_id,"
        " p.seen = p.now_seen AS fresh),"
        # Found work: busy, so starts homed here stop notifying (_pg_members).
        f" busy AS (UPDATE {s}.runtimes SET idle = false, seen_at = {NOW}"
        " WHERE %(busy)s"
        " AND origin = %(me)s AND EXISTS (SELECT 1 FROM locked))"
        # Messages in occurrence order, ties in arrival order (DESIGN §7);
        # the database clock rides along for PostgresProvider.clock.
        f" SELECT l.*, ms.ids, ms.kinds, ms.bodies, ms.occurred, {NOW}"
        " FROM locked l CROSS JOIN LATERAL"
        " (SELECT array_agg(m.id ORDER BY m.occurred_at, m.id) AS ids,"
        " array_agg(m.kind ORDER BY m.occurred_at, m.id) AS kinds,"
        " array_agg(m.body ORDER BY m.occurred_at, m.id) AS bodies,"
        " array_agg(m.occurred_at ORDER BY m.occurred_at, m.id) AS occurred"
        f" FROM {s}.messages m WHERE l.fresh AND m.instance_id = l.instance_id"
        f" AND m.visible_at <= {NOW}) ms"
        " ORDER BY l.due, l.first_id"
    )


def _complete_activities(s: str) -> str:
    # Only items still held under the caller's token are deleted, and only
    # those produce a message (if their instance still exists): duplicate
    # and stale completions are dropped here. LIMIT n (the number of
    # results) tells the planner how few rows the JSON holds: guessing 100,
    # it deleted by a hash join over a sequential scan of every activity
    # row, in flight or dead (0.6 ms with 3,000 items in flight elsewhere,
    # against 0.13 by the key).
    return (
        "WITH r AS (SELECT * FROM json_to_recordset(%(r)s::json) AS r(id bigint,"
        " token text, iid text, kind text, body text, vis float8, key text,"
        " pos int) LIMIT %(n)s),"
        f" done AS (DELETE FROM {s}.activities a USING r"
        " WHERE a.id = r.id AND a.lock_token = r.token RETURNING a.id),"
        f" sent AS (INSERT INTO {s}.messages (instance_id, kind, body, visible_at,"
        " key, occurred_at) SELECT r.iid, r.kind, r.body,"
        f" coalesce(r.vis, {NOW}), r.key, coalesce(r.vis, {NOW})"
        " FROM r WHERE r.id IN (SELECT id FROM done)"
        f" AND (SELECT true FROM {s}.instances x WHERE x.instance_id = r.iid)"
        " IS NOT NULL ORDER BY r.pos RETURNING visible_at, instance_id), "
        + wake(("ch_orch", "false"), targeted=s)
        + " SELECT (SELECT count(*) FROM sent), (SELECT count(*) FROM wake)"
    )


# --- row mapping --------------------------------------------------------------


def queued_messages(
    ids: list[int] | None,
    kinds: list[str] | None,
    bodies: list[str] | None,
    occurred: list[float] | None,
) -> list[QueuedMessage]:
    """Zip the aggregated message columns (``NULL`` when there are none)."""
    return [
        QueuedMessage(id=i, kind=k, body=b, occurred_at=o)
        for i, k, b, o in zip(
            ids or [], kinds or [], bodies or [], occurred or [], strict=True
        )
    ]


def message_params(message: Message) -> dict[str, Any]:
    """The ``kind``/``body``/``vis``/``key`` parameters of one message."""
    return {
        "kind": message.kind,
        "body": message.body,
        "vis": message.visible_at,
        "key": message.key,
    }


def create_params(new: NewInstance) -> dict[str, Any]:
    """The parameters of `PgSql.create_instance` for *new* (without wake-ups)."""
    return {
        "iid": new.instance_id,
        "name": new.name,
        "version": new.version,
        "parent": new.parent_instance_id,
        **message_params(new.start),
    }
