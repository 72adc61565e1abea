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
