-- perdure PostgreSQL schema, version 4: listing instances by name (DESIGN §10).
--
-- query_instances pages newest first by (created_at, seq) under each
-- filter; status and creation time had an index, the orchestration name
-- gets one too, so a filtered page costs the same at any table size. name
-- never changes, so the index does not cost fetches or commits their HOT
-- updates.
CREATE INDEX IF NOT EXISTS instances_by_name ON instances (name, created_at, seq);
