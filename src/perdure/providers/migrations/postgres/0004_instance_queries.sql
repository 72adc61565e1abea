-- perdure PostgreSQL schema, version 4: listing by name, deleting by parent (§10).
--
-- query_instances pages newest first by (created_at, seq) under each
-- filter; status and creation time had an index, the orchestration name
-- gets one too, so a filtered page costs the same at any table size. name
-- never changes, so the index does not cost fetches or commits their HOT
-- updates.
CREATE INDEX IF NOT EXISTS instances_by_name ON instances (name, created_at, seq);

-- delete_instance and purge_instances find sub-orchestrations by parent:
-- without this index each deleted instance cost a scan of the whole table.
CREATE INDEX IF NOT EXISTS instances_by_parent ON instances (parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
