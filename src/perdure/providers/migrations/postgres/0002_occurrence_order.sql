-- perdure PostgreSQL schema, version 2: occurrence order (DESIGN §7).
--
-- occurred_at is when the thing a message reports happened: a timer's fire
-- time, the moment an event was raised or a cancel requested, the moment
-- an activity's or a child's result was written. It is the message's first
-- visible_at, stamped by the database clock (the runtime stamps timer fire
-- times with the database clock too, see PostgresProvider.clock), and it
-- never changes afterwards (visible_at does: a retry backoff delays it). A
-- turn delivers an instance's due messages in occurred_at order, then
-- arrival (id) order, so history order is the order in which things
-- happened, whatever the downtime, backlog or number of runtimes.
ALTER TABLE messages ADD COLUMN occurred_at double precision NOT NULL DEFAULT 0;

UPDATE messages SET occurred_at = visible_at;
