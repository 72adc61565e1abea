-- perdure PostgreSQL schema, version 7: the runtimes that fetch here (§11).
--
-- Each runtime (a provider object whose dispatcher fetches) upserts its row
-- every few seconds and deletes it when it closes. A client's start gives
-- the new instance a home among the live ones (rendezvous hashing on the
-- instance id) and wakes that runtime only, instead of every runtime
-- racing for it with all but one fetching nothing (issue 17). The row is
-- tiny and few: no index beyond the key.
CREATE TABLE IF NOT EXISTS runtimes (
    origin  text PRIMARY KEY,
    seen_at double precision NOT NULL
);
