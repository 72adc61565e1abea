-- perdure SQLite schema, version 1.
--
-- Times are Unix wall-clock seconds (REAL): several processes may share the
-- file, so leases must mean the same thing in all of them.

-- One row per instance. The lock columns make the row its own peek-lock:
-- a dispatcher owns the instance while lock_token is set and locked_until
-- is in the future. history_len caches the event count of the current
-- execution so a fetch never has to count history rows.
CREATE TABLE instances (
    instance_id        TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    version            TEXT NOT NULL,
    execution_id       INTEGER NOT NULL,
    status             TEXT NOT NULL,
    output             TEXT,
    error              TEXT,
    custom_status      TEXT,
    parent_instance_id TEXT,
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    history_len        INTEGER NOT NULL DEFAULT 0,
    lock_token         TEXT,
    locked_until       REAL,
    attempt            INTEGER NOT NULL DEFAULT 0
);

-- list_instances: newest first, with or without a status filter.
CREATE INDEX instances_by_created ON instances (created_at);
CREATE INDEX instances_by_status ON instances (status, created_at);

-- Append-only history, clustered by instance and execution so a replay
-- reads one contiguous range.
CREATE TABLE history (
    instance_id  TEXT NOT NULL,
    execution_id INTEGER NOT NULL,
    event_id     INTEGER NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (instance_id, execution_id, event_id)
) WITHOUT ROWID;

-- Orchestrator queue. visible_at is never NULL in storage: "now" is
-- written at enqueue time so that one index serves both timers and
-- ordinary messages. A new id is always above every stored one, so ids
-- order the messages that exist by arrival. (No AUTOINCREMENT: an id may
-- be reused once its message is gone, which nothing depends on: consumed
-- ids are deleted under the instance lock, and a stale turn is refused by
-- its lock token. It saves a page write per commit.)
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    visible_at  REAL NOT NULL,
    key         TEXT
);

CREATE INDEX messages_by_visible ON messages (visible_at);
CREATE INDEX messages_by_instance ON messages (instance_id, id);
CREATE INDEX messages_by_key ON messages (instance_id, key) WHERE key IS NOT NULL;

-- Activity queue. A fetched item's visible_at is moved to the end of its
-- lease, so "visible_at <= now" alone selects both never-fetched items and
-- items whose lease expired: one index range, no scan over running work.
CREATE TABLE activities (
    id           INTEGER PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    execution_id INTEGER NOT NULL,
    event_id     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    body         TEXT NOT NULL,
    visible_at   REAL NOT NULL,
    lock_token   TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (instance_id, execution_id, event_id)
);

CREATE INDEX activities_by_visible ON activities (visible_at);
