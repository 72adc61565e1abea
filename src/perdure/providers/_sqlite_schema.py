"""The SQLite provider's schema: migration runner, SQL text and row mapping."""

from __future__ import annotations

import sqlite3
import time

from perdure._errors import StorageError
from perdure.providers._base import Message
from perdure.providers.helpers import INSTANCE_COLUMNS, load_migrations

__all__ = [
    "COMMIT_INSTANCE",
    "COMMIT_UNLOCKED",
    "INSERT_ACTIVITY",
    "INSERT_CLAIMED",
    "INSERT_EVENT",
    "INSERT_INSTANCE",
    "INSERT_MESSAGE",
    "INSERT_MESSAGE_IF_INSTANCE",
    "INSTANCE_COLUMNS",
    "LOCK_ACTIVITIES",
    "LOCK_INSTANCE",
    "READY_INSTANCES",
    "STEP_INSTANCE",
    "STEP_UNLOCKED",
    "VISIBLE_MESSAGES",
    "check_database",
    "message_row",
    "migrate",
]


def _statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would COMMIT first)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip()
        for part in buffer.splitlines()
    ):
        raise StorageError(f"incomplete SQL statement in migration: {buffer!r}")
    return statements


def _refuse_newer(applied: set[int], path: str) -> None:
    newest = load_migrations("sqlite")[-1][0]
    if applied and max(applied) > newest:
        raise StorageError(
            f"SQLite database {path!r} has schema version {max(applied)}, but this"
            f" perdure supports versions up to {newest}; upgrade perdure to use it"
        )


def check_database(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a file perdure must not change, before anything is written.

    A file with tables but no ``schema_version`` belongs to another
    application, and one whose schema is newer than the packaged migrations
    was written by a newer perdure: either is refused before the switch to
    WAL, which would rewrite the file's header.

    Raises:
        StorageError: The file is foreign or its schema is too new.
    """
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master"
            " WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
    }
    if not tables:
        return  # a new (or empty) file
    if "schema_version" not in tables:
        raise StorageError(
            f"{path!r} is not a perdure database (it has tables such as"
            f" {min(tables)!r} but no schema_version); refusing to change it"
        )
    _refuse_newer(
        {row[0] for row in conn.execute("SELECT version FROM schema_version")}, path
    )


def migrate(conn: sqlite3.Connection, path: str = ":memory:") -> None:
    """Apply pending migrations in one transaction.

    ``BEGIN IMMEDIATE`` around check-and-apply makes two processes opening a
    fresh file at once safe: the second waits, then finds nothing to do.

    Raises:
        StorageError: The schema is newer than the packaged migrations.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
        _refuse_newer(applied, path)
        for version, script in load_migrations("sqlite"):
            if version in applied:
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------

INSERT_INSTANCE = (
    "INSERT INTO instances (instance_id, name, version, execution_id, status,"
    " parent_instance_id, created_at, updated_at)"
    " VALUES (?, ?, ?, 1, 'Running', ?, ?, ?) ON CONFLICT (instance_id) DO NOTHING"
)
# A message occurs when it first becomes visible (see 0002): occurred_at
# takes the initial visible_at and keeps it when a backoff moves visible_at.
INSERT_MESSAGE = (
    "INSERT INTO messages (instance_id, kind, body, visible_at, key, occurred_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?4)"
)
INSERT_MESSAGE_IF_INSTANCE = (
    "INSERT INTO messages (instance_id, kind, body, visible_at, key, occurred_at)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?4"
    " WHERE EXISTS (SELECT 1 FROM instances WHERE instance_id = ?1)"
)
# Messages in due order, skipping locked instances. CROSS JOIN pins the
# messages index as the outer loop: rows stream in ORDER BY order with no
# sort, so the fetch stops after the first max_items instances.
# Version routing (DESIGN §9): ?2 is NULL (any handler) or a JSON list of
# "name\x1fversion" strings, ?3 a JSON list of the names (an instance whose
# version is still "" goes to any runtime that has its name).
_HANDLED = (
    "(i.name || char(31) || i.version IN (SELECT value FROM json_each(?2))"
    " OR (i.version = '' AND i.name IN (SELECT value FROM json_each(?3))))"
)
# Version routing is applied to these rows in Python (`RoutingFilter`):
# cheaper than matching JSON parameters in SQL on every fetch.
READY_INSTANCES = (
    "SELECT m.instance_id, i.status, i.name, i.version"
    " FROM messages AS m CROSS JOIN instances AS i"
    " ON i.instance_id = m.instance_id"
    " WHERE m.visible_at <= ?1 AND (i.lock_token IS NULL OR i.locked_until < ?1)"
    " AND i.status != 'Suspended'"
    # Not started yet (a delayed start): events and cancels sent meanwhile
    # wait until the start message is due (NOT_STARTED_YET).
    " AND (i.history_len > 0 OR m.kind IN ('start', 'continue_as_new'))"
    " ORDER BY m.visible_at, m.id"
)
WAITING_INSTANCES = (
    "SELECT i.name, i.version, count(*) FROM instances AS i"
    " WHERE i.status = 'Running' AND (i.lock_token IS NULL OR i.locked_until < ?1)"
    f" AND NOT {_HANDLED} AND EXISTS (SELECT 1 FROM messages AS m"
    " WHERE m.instance_id = i.instance_id AND m.visible_at <= ?4)"
    " GROUP BY i.name, i.version ORDER BY i.name, i.version"
)
RESUME_INSTANCE = (
    "UPDATE instances SET status = 'Running', error = NULL, attempt = 0,"
    " updated_at = ? WHERE instance_id = ? AND status = 'Suspended'"
)
# Rewind (DESIGN §9): a Failed instance runs again; a turn in flight on it
# (consuming late messages) loses its lock and is rejected at commit.
REWIND_INSTANCE = (
    "UPDATE instances SET status = 'Running', error = NULL, output = NULL,"
    " attempt = 0, lock_token = NULL, locked_until = NULL, updated_at = ?"
    " WHERE instance_id = ? AND status = 'Failed'"
)
LOCK_INSTANCE = (
    "UPDATE instances SET lock_token = ?, locked_until = ?, attempt = attempt + 1"
    f" WHERE instance_id = ? RETURNING {INSTANCE_COLUMNS}, history_len, attempt"
)
# Occurrence order (DESIGN §7), ties in arrival order.
VISIBLE_MESSAGES = (
    "SELECT id, kind, body, occurred_at FROM messages"
    " WHERE instance_id = ? AND visible_at <= ? ORDER BY occurred_at, id"
)
# The turn's guard: lock held, and the history it was computed against is
# the stored one (same execution and length, or a move to a newer execution
# from scratch). When it matches no row, nothing of the turn is written.
COMMIT_INSTANCE = (
    "UPDATE instances SET execution_id = :execution_id,"
    " name = coalesce(:name, name), version = coalesce(:version, version),"
    " status = :status, output = :output, error = :error,"
    " custom_status = coalesce(:custom_status, custom_status),"
    " state_values = coalesce(:state_values, state_values),"
    " updated_at = :now, history_len = :history_len,"
    " lock_token = NULL, locked_until = NULL, attempt = 0"
    " WHERE instance_id = :instance_id AND lock_token = :lock_token AND ("
    "  (execution_id = :execution_id AND history_len = :history_start)"
    "  OR (execution_id < :execution_id AND :history_start = 0))"
)
# The guard of a turn run without the lock (``TurnCommit.lock_token`` None,
# a fused activity result): nobody holds the lock, and no message is due
# that the turn did not see (DESIGN §7: it would have come first).
COMMIT_UNLOCKED = COMMIT_INSTANCE.replace(
    "lock_token = :lock_token",
    "(lock_token IS NULL OR locked_until < :now) AND NOT EXISTS (SELECT 1"
    " FROM messages AS m WHERE m.instance_id = :instance_id"
    " AND m.visible_at <= :now)",
)


def _keep_status(update: str) -> str:
    """*update* without setting status, name and version; status must match.

    SQLite rewrites an index entry for every column a statement sets, even
    to its own value: setting an unchanged ``status`` and ``name`` wrote two
    index pages (``instances_by_status``, ``instances_by_name``) per turn,
    two of a sequential step's ~12 WAL frames. A turn that keeps them uses
    this form; if it matches no row the full form decides.
    """
    lean = update.replace(
        " name = coalesce(:name, name), version = coalesce(:version, version),", ""
    ).replace(" status = :status,", "")
    lean = lean.replace(
        " WHERE instance_id = :instance_id AND",
        " WHERE instance_id = :instance_id AND status = :status AND",
    )
    if lean.count(":status") != 1 or ":name" in lean:
        raise AssertionError(f"the guard's text changed; cannot derive: {lean}")
    return lean


#: `COMMIT_INSTANCE` / `COMMIT_UNLOCKED` for a turn that keeps the stored
#: status, name and version (most turns).
STEP_INSTANCE = _keep_status(COMMIT_INSTANCE)
STEP_UNLOCKED = _keep_status(COMMIT_UNLOCKED)
INSERT_EVENT = (
    "INSERT INTO history (instance_id, execution_id, event_id, data)"
    " VALUES (?, ?, ?, ?)"
)
INSERT_ACTIVITY = (
    "INSERT OR IGNORE INTO activities"
    " (instance_id, execution_id, event_id, name, body, visible_at,"
    " tag, session, priority)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# An item inserted held by the committing runtime's worker (ActivityClaim):
# its visible_at is its lease end, as for a fetched one.
INSERT_CLAIMED = (
    "INSERT OR IGNORE INTO activities (instance_id, execution_id, event_id,"
    " name, body, visible_at, lock_token, attempt, tag, session, priority)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) RETURNING id"
)
# A fetched item's visible_at becomes its lease end (see 0001_initial.sql).
LOCK_ACTIVITIES = (
    "UPDATE activities SET lock_token = lower(hex(randomblob(16))),"
    " visible_at = ?1, attempt = attempt + 1"
    " WHERE id IN (SELECT id FROM activities WHERE visible_at <= ?2"
    "  ORDER BY visible_at, id LIMIT ?3)"
    " RETURNING id, instance_id, execution_id, event_id, name, body,"
    " lock_token, attempt, heartbeat_details"
)


def message_row(
    instance_id: str, message: Message, now: float
) -> tuple[str, str, str, float, str | None]:
    """Parameters of `INSERT_MESSAGE`; no ``visible_at`` means *now*."""
    visible_at = now if message.visible_at is None else message.visible_at
    return (instance_id, message.kind, message.body, visible_at, message.key)
