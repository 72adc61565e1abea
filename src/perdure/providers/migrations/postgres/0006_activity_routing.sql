-- perdure PostgreSQL schema, version 6: activity routing and flow control
-- (docs/routing.md).
--
-- tag, session and priority come from ctx.schedule_activity(...). They are
-- routing data, not history: the routed fetch reads them, nothing else.
-- Adding nullable columns, and one with a constant default, rewrites
-- nothing. activities_by_route serves the routed fetch, one registered name
-- at a time, highest priority first, then oldest first, so items of names
-- a runtime lacks cost it nothing. activities_leased counts the leased
-- items of a name for its concurrency limit.
ALTER TABLE activities ADD COLUMN tag text;
ALTER TABLE activities ADD COLUMN session text;
ALTER TABLE activities ADD COLUMN priority integer NOT NULL DEFAULT 0;
CREATE INDEX activities_by_route ON activities (name, priority DESC, visible_at, id);
CREATE INDEX activities_leased ON activities (name, visible_at) WHERE lock_token IS NOT NULL;

-- One row per limited activity name. Fetches that declare a limit for the
-- name lock the row first, so checking and taking are serialised; starts
-- holds the start times (database clock) its rate limit counts, at most as
-- many as the largest rate declared for it.
CREATE TABLE activity_limits (
    name   text PRIMARY KEY,
    starts double precision[] NOT NULL DEFAULT '{}'
);

-- Session affinity: the runtime (owner) that runs a session's items, while
-- its lease (expires_at, renewed by the owner) lives.
CREATE TABLE activity_sessions (
    session    text PRIMARY KEY,
    owner      text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX activity_sessions_by_owner ON activity_sessions (owner);
