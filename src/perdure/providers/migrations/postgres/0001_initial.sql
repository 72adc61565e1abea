-- perdure PostgreSQL schema, version 1.
--
-- Applied with search_path set to the provider's schema, so names here are
-- unqualified. Times are Unix epoch seconds (double precision). Every time
-- the provider stamps itself (now, lease ends, retry delays) comes from the
-- database clock, so leases mean the same thing on every machine; only
-- visible_at values supplied by the runtime (timer fire times) are taken
-- from the runtime's clock.

-- One row per instance; the lock columns make the row its own peek-lock: a
-- dispatcher owns the instance while locked_until is set and in the future.
-- history_len caches the event count of the current execution so a fetch
-- never counts history rows. owner is the provider object (one per
-- runtime process) that fetched the instance last: it has the instance's
-- live state cached, so other runtimes leave the instance to it for a short
-- while (see the fetch statement). None of the columns a fetch, a lease renewal or
-- a commit changes is indexed, so those updates stay HOT (no index writes).
CREATE TABLE instances (
    instance_id        text PRIMARY KEY,
    seq                bigint GENERATED ALWAYS AS IDENTITY,
    name               text NOT NULL,
    version            text NOT NULL,
    execution_id       bigint NOT NULL,
    status             text NOT NULL,
    output             text,
    error              text,
    custom_status      text,
    parent_instance_id text,
    created_at         double precision NOT NULL,
    updated_at         double precision NOT NULL,
    history_len        integer NOT NULL DEFAULT 0,
    lock_token         text,
    locked_until       double precision,
    attempt            integer NOT NULL DEFAULT 0,
    owner              text
) WITH (fillfactor = 80);

-- list_instances: newest first (seq breaks created_at ties), with or
-- without a status filter. status changes are rare (once per instance).
CREATE INDEX instances_by_created ON instances (created_at, seq);
CREATE INDEX instances_by_status ON instances (status, created_at, seq);

-- Append-only history; a replay reads one primary-key range.
CREATE TABLE history (
    instance_id  text NOT NULL,
    execution_id bigint NOT NULL,
    event_id     integer NOT NULL,
    data         text NOT NULL,
    PRIMARY KEY (instance_id, execution_id, event_id)
);

-- Orchestrator queue. visible_at is never NULL: "now" is written at enqueue
-- time so that one index serves timers and ordinary messages alike. The
-- identity id gives arrival order.
CREATE TABLE messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id text NOT NULL,
    kind        text NOT NULL,
    body        text NOT NULL,
    visible_at  double precision NOT NULL,
    key         text
);

CREATE INDEX messages_by_visible ON messages (visible_at, id);
CREATE INDEX messages_by_instance ON messages (instance_id, id);
CREATE INDEX messages_by_key ON messages (instance_id, key) WHERE key IS NOT NULL;

-- Activity queue. A fetched item's visible_at moves to the end of its
-- lease, so "visible_at <= now" alone selects both never-fetched items and
-- items whose lease expired: one index range, no scan over running work.
CREATE TABLE activities (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id  text NOT NULL,
    execution_id bigint NOT NULL,
    event_id     integer NOT NULL,
    name         text NOT NULL,
    body         text NOT NULL,
    visible_at   double precision NOT NULL,
    lock_token   text,
    attempt      integer NOT NULL DEFAULT 0,
    UNIQUE (instance_id, execution_id, event_id)
);

CREATE INDEX activities_by_visible ON activities (visible_at, id);
