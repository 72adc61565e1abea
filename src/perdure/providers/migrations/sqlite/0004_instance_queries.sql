-- perdure SQLite schema, version 4: listing instances by name (DESIGN §10).
--
-- query_instances pages newest first by (created_at, rowid) under each
-- filter; status and creation time had an index, the orchestration name
-- gets one too, so a filtered page costs the same at any table size.
CREATE INDEX IF NOT EXISTS instances_by_name ON instances (name, created_at);
