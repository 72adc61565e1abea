-- perdure PostgreSQL schema, version 3: activity heartbeats (DESIGN §9).
--
-- heartbeat_details is the JSON text of the details an activity last gave
-- ctx.heartbeat(...), as stored by save_activity_heartbeats. It stays with
-- the work item across retries, shutdowns and crashes (abandon and lease
-- expiry leave it alone), so the next attempt, in whichever runtime, reads
-- it; it goes with the item when the item is completed or deleted. Adding a
-- nullable column without a default rewrites nothing.
ALTER TABLE activities ADD COLUMN heartbeat_details text;
