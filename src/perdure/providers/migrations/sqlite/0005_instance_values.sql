-- perdure SQLite schema, version 5: instance values (ctx.set_value).
--
-- state_values is the JSON text of the object of an instance's values, as
-- its orchestration last set them: written by the turn that changed them,
-- in the same transaction (TurnCommit.state_values), read by
-- Client.get_values without running the orchestration. NULL: none were
-- ever set. The column moves with the instance to a new execution (a
-- continue-as-new carries the values on) and goes with the row.
ALTER TABLE instances ADD COLUMN state_values TEXT;
