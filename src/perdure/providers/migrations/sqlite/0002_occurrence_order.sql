-- perdure SQLite schema, version 2: occurrence order (DESIGN §7).
--
-- occurred_at is when the thing a message reports happened: a timer's fire
-- time, the moment an event was raised, an activity or child finished, a
-- cancel was requested. It is the message's first visible_at and never
-- changes afterwards (visible_at does: a retry backoff delays it), and a
-- turn delivers an instance's due messages in occurred_at order, then
-- arrival (id) order. History order is then the order in which things
-- happened, whatever the downtime or backlog.
ALTER TABLE messages ADD COLUMN occurred_at REAL NOT NULL DEFAULT 0;

UPDATE messages SET occurred_at = visible_at;
