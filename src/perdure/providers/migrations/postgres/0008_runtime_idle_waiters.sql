-- perdure PostgreSQL schema, version 8: whether a runtime is asleep (§11).
--
-- Every NOTIFY costs each LISTENing backend of the database a transaction,
-- whatever its channel. A runtime that is busy fetching sets idle = false
-- and fetches again on its own, so a client's start homed there sends no
-- NOTIFY; before it sleeps it sets idle = true and looks once more. Starts
-- read the flag FOR SHARE, so none slips between that update and that
-- last look (see _pg_members). Old runtimes never clear the flag: they are
-- woken as before.
ALTER TABLE runtimes ADD COLUMN IF NOT EXISTS idle boolean NOT NULL DEFAULT true;

-- Clients waiting for instances to finish (wait_for_orchestration). A
-- turn that ends an instance notifies them only while one is registered
-- here: without a waiter, the notification would only cost every LISTEN
-- backend a transaction. A waiter's row expires by itself (until).
CREATE TABLE IF NOT EXISTS waiters (
    origin text PRIMARY KEY,
    until  double precision NOT NULL
);
