"""The parts every PostgreSQL statement shares: the clock and wake-ups.

``NOW`` is the database clock (see `perdure.providers._pg_sql`); `wake`
writes the ``NOTIFY`` that wakes other processes into the statement whose
write it announces, so it is sent exactly when that write commits.
"""

from __future__ import annotations

from perdure.providers._pg_listen import private_channel

__all__ = ["NOW", "PRIVATE", "SPARE_FOR", "wake"]

NOW = "extract(epoch FROM statement_timestamp())::float8"
PRIVATE = private_channel("")  # a provider object's own channel, less its id
#: Seconds a fetch that found less than it asked for counts as "this
#: runtime has room" (`wake`'s ``spare_orch``/``spare_act``): a loop that
#: stops fetching stops counting within this time.
SPARE_FOR = 1.0


def wake(*pairs: tuple[str, str], targeted: str = "", extra: str = "") -> str:
    """A CTE ``wake`` notifying each ``(channel parameter, condition)`` that holds.

    *targeted*, the schema of a statement whose ``sent`` rows (``visible_at``,
    ``instance_id``) are orchestration messages: instead of waking every
    runtime, it notifies the runtime that owns each target instance (its
    cached driver runs the turn; the others would leave it alone, see the
    fetch's affinity), none when the owner is this provider object (its
    local waiters were woken directly), and anyone for unowned instances
    unless this provider's own dispatcher has room (``spare_orch``: until
    then, database time). The payload is ``sender:target`` (see `Listener`).
    *extra* is one more ``SELECT pg_notify(...)`` to add.
    """
    parts = []
    if pairs:
        rows = ", ".join(f"(%({param})s::text, {cond})" for param, cond in pairs)
        parts.append(
            "SELECT pg_notify(w.channel, %(origin)s)"
            f" FROM (VALUES {rows}) AS w(channel, due) WHERE w.due"
        )
    if targeted:
        parts.append(
            # A targeted wake-up goes to the target's own channel: only that
            # provider wakes (every LISTEN backend of the database still
            # reads the notification, a transaction each: _pg_members).
            "SELECT pg_notify(CASE t.target WHEN '' THEN %(ch_orch)s"
            f" ELSE '{PRIVATE}' || t.target END, %(origin)s || ':' || t.target)"
            # The owner by a correlated lookup, not a join: a join of the
            # sent rows (PostgreSQL guesses 100) with "instances" can be
            # planned as a sequential scan of every instance
            # (_pg_commit_sql's docstring).
            " FROM (SELECT DISTINCT coalesce(o.owner, '') AS target FROM"
            f" (SELECT (SELECT x.owner FROM {targeted}.instances x"
            " WHERE x.instance_id = m.instance_id) AS owner FROM sent m"
            f" WHERE m.visible_at <= {NOW}) o"
            " WHERE o.owner IS DISTINCT FROM %(origin)s"
            f" AND (o.owner IS NOT NULL OR %(spare_orch)s <= {NOW})) t"
        )
    if extra:
        parts.append(extra)
    if not parts:
        raise ValueError("a wake-up needs a condition, a target or an extra")
    return "wake AS (" + " UNION ALL ".join(parts) + ")"
