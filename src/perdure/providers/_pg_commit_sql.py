"""The PostgreSQL commit statement, written for each batch's shape.

One statement commits a batch of turns (distinct instances): data-modifying
CTEs write every row group of the batch, sent as one JSON parameter each
(`perdure.providers._pg_batch`). "ok" is the guard: a turn whose lock or
history position does not match updates no row, and every other step keeps
only rows of turns in ok, so a rejected turn writes nothing. All steps see
one snapshot, so the caller has already removed work cancelled and
messages dropped within the same turn; "kids" stands in for the rows it
inserts.

Why a statement per shape: PostgreSQL sets up every step of a statement
(opening each written table and all its indexes) even when the step's rows
are empty, and evaluates every wake-up condition. With all nine row groups
that fixed cost was ~0.9 ms of server time per commit, most of a
sequential workflow's step; a typical turn fills three or four groups
(events, the result it acknowledged, the activity it schedules). So a
group with no rows is left out of the statement, and so is the "instances"
wake-up when no turn ends or sets a status. There are at most a few dozen
shapes in practice; each is built once and prepared by psycopg like any
statement.

Why ``instances`` is reached through ``instance_id = ANY(ARRAY(SELECT iid
FROM t))`` beside the join condition: PostgreSQL cannot know how many rows
a JSON parameter holds and assumes 100, and for 100 rows it joined
``instances`` by a hash join over a sequential scan of the whole table
until the table passed ~30,000 rows. A sequential workflow's commit holds
one turn, so with 10,000 finished instances kept each step read them all:
3.1 ms a step instead of 0.74 (4.6 ms at 20,000; at 50,000 the planner
went back to the index). ``ANY`` of an array is an index condition whose
elements are the batch's few instance ids, so the table is read at the
rows the batch touches, whatever its size; single instance lookups (a sent
message's target) are correlated scalar subqueries, which are never turned
into joins. `tests/providers/test_plans.py` audits the plan of every
statement the provider runs on tables of that size.

The queue tables (``activities``, ``messages``) keep plain joins: their
rows are deleted as fast as they are inserted, so they are small by their
statistics and large by their dead rows between two vacuums, and there
PostgreSQL's estimate for ``ANY`` of an unknown array (ten index descents)
made the primary-key probe look dearer than a full scan of another index:
with it, a long workflow's acknowledgement grew from 0.008 to 0.146 ms by
9,000 steps (its step from 0.73 to 0.97 ms).
"""

from __future__ import annotations

from collections.abc import Mapping

from perdure.providers._pg_wake import NOW, wake

__all__ = ["GROUPS", "CommitSql"]

#: The row groups besides the turns themselves ("t"), in statement order:
#: acknowledged activity items, events, consumed messages, new work,
#: cancelled work, new child instances, sent messages, dropped messages.
GROUPS = ("a", "e", "c", "w", "k", "n", "q", "d")


class CommitSql:
    """The commit statement for one schema, one text per batch shape."""

    def __init__(self, schema: str) -> None:
        self._s = schema
        self._texts: dict[tuple[frozenset[str], bool, bool], str] = {}

    def text(self, params: Mapping[str, str], ends: bool) -> str:
        """The statement for a batch.

        Args:
            params: The batch's row groups as JSON (``"[]"``: no rows),
                and ``one``, the instance id of a batch of one turn.
            ends: Some turn ends its instance or sets a custom status (it
                may have to wake a waiting client).
        """
        shape = (
            frozenset(g for g in GROUPS if params[g] != "[]"),
            ends,
            "one" in params,
        )
        text = self._texts.get(shape)
        if text is None:
            text = self._texts[shape] = _commit(self._s, *shape)
        return text


def _commit(s: str, groups: frozenset[str], ends: bool, one: bool) -> str:
    in_ok = "IN (SELECT idx FROM ok)"
    # A correlated scalar subquery, not EXISTS: PostgreSQL turns an EXISTS
    # in WHERE into a join, which can be a hash join over a sequential scan
    # of every instance (module docstring); this stays one index lookup per
    # sent message.
    exists = (
        f"(SELECT true FROM {s}.instances x WHERE x.instance_id = q.target) IS NOT NULL"
    )
    ctes = [
        "t AS (SELECT * FROM json_to_recordset(%(t)s::json) AS t(idx int,"
        " iid text, token text, exec bigint, hstart int, hlen int, name text,"
        " version text, status text, output text, error text, custom text,"
        " vals text))"
    ]
    if "a" in groups:
        ctes.append(
            "acked AS (SELECT * FROM json_to_recordset(%(a)s::json)"
            " AS a(idx int, id bigint, token text))"
        )
    ctes.append(
        f"ok AS (UPDATE {s}.instances i SET execution_id = t.exec,"
        " name = coalesce(t.name, i.name), version = coalesce(t.version, i.version),"
        " status = t.status, output = t.output, error = t.error,"
        " custom_status = coalesce(t.custom, i.custom_status),"
        " state_values = coalesce(t.vals, i.state_values),"
        f" updated_at = {NOW}, history_len = t.hlen,"
        " lock_token = NULL, locked_until = NULL, attempt = 0"
        # By the key's index whatever the table's size (module docstring):
        # a batch of one turn (a sequential workflow's every step) names its
        # instance; for a larger batch, ANY(ARRAY(...)).
        + (
            " FROM t WHERE i.instance_id = %(one)s"
            if one
            else " FROM t WHERE i.instance_id = ANY(ARRAY(SELECT iid FROM t))"
        )
        + " AND i.instance_id = t.iid"
        # Locked by the turn's fetch; or, for a turn run without the lock
        # (token NULL: a fused activity result), locked by nobody and with
        # no due message the turn did not see (DESIGN §7).
        " AND (i.lock_token = t.token OR (t.token IS NULL"
        f" AND (i.locked_until IS NULL OR i.locked_until < {NOW})"
        # (A correlated lookup, not NOT EXISTS: that became an anti-join
        # reading every due message of every instance, the whole backlog.)
        f" AND (SELECT true FROM {s}.messages m WHERE m.instance_id ="
        f" i.instance_id AND m.visible_at <= {NOW} LIMIT 1) IS NULL))"
        " AND ((i.execution_id = t.exec AND i.history_len = t.hstart)"
        " OR (i.execution_id < t.exec AND t.hstart = 0))"
        + (
            # Every activity item whose result it consumed is still held.
            # Uncorrelated, so it runs once per statement (a hashed subplan):
            # as "NOT EXISTS (... WHERE a.idx = t.idx ...)" the planner,
            # expecting one turn, ran it again for every turn, reading all
            # of "acked" each time: 5.5 of 7.6 ms for a batch of 110 turns.
            # The item by a correlated lookup, not NOT EXISTS: that became an
            # anti-join reading every activity row (with 3,000 items in
            # flight elsewhere, a sequential step's commit took 1.0 ms
            # instead of 0.26); this is one key lookup per acknowledged item.
            " AND t.idx NOT IN (SELECT a.idx FROM acked a WHERE"
            f" (SELECT true FROM {s}.activities x"
            " WHERE x.id = a.id AND x.lock_token = a.token) IS NULL)"
            if "a" in groups
            else ""
        )
        + " RETURNING t.idx, t.status, t.custom)"
    )
    if "a" in groups:
        ctes.append(
            f"acks AS (DELETE FROM {s}.activities x USING acked a"
            f" WHERE x.id = a.id AND x.lock_token = a.token AND a.idx {in_ok})"
        )
    if "e" in groups:
        ctes.append(
            f"events AS (INSERT INTO {s}.history (instance_id, execution_id,"
            " event_id, data) SELECT e.iid, e.exec, e.eid, e.data"
            " FROM json_to_recordset(%(e)s::json)"
            " AS e(idx int, iid text, exec bigint, eid int, data text)"
            f" WHERE e.idx {in_ok})"
        )
    if "c" in groups:
        ctes.append(
            f"consumed AS (DELETE FROM {s}.messages m USING json_to_recordset("
            " %(c)s::json) AS c(idx int, iid text, id bigint)"
            f" WHERE m.id = c.id AND m.instance_id = c.iid AND c.idx {in_ok})"
        )
    if "w" in groups:
        # Work with a token is inserted held by this runtime's worker
        # (ActivityClaim): leased, attempt 1, its id returned.
        ctes.append(
            f"work AS (INSERT INTO {s}.activities (instance_id, execution_id,"
            " event_id, name, body, visible_at, lock_token, attempt, tag,"
            " session, priority) SELECT w.iid, w.exec, w.eid,"
            f" w.name, w.body, CASE WHEN w.token IS NULL THEN coalesce(w.vis, {NOW})"
            f" ELSE {NOW} + w.lease END, w.token, CASE WHEN w.token IS NULL THEN 0"
            " ELSE 1 END, w.tag, w.session, w.priority"
            " FROM json_to_recordset(%(w)s::json) AS w(idx int, iid text,"
            " exec bigint, eid int, name text, body text, vis float8, token text,"
            " lease float8, tag text, session text, priority int, pos int)"
            f" WHERE w.idx {in_ok} ORDER BY w.pos"
            " ON CONFLICT (instance_id, execution_id, event_id)"
            " DO NOTHING RETURNING visible_at, id, lock_token)"
        )
    if "k" in groups:
        ctes.append(
            f"cancels AS (DELETE FROM {s}.activities a USING json_to_recordset("
            " %(k)s::json) AS k(idx int, iid text, exec bigint, eid int)"
            " WHERE a.instance_id = k.iid AND a.execution_id = k.exec"
            f" AND a.event_id = k.eid AND k.idx {in_ok})"
        )
    if "n" in groups:
        ctes.append(
            f"kids AS (INSERT INTO {s}.instances (instance_id, name, version,"
            " execution_id, status, parent_instance_id, created_at, updated_at)"
            f" SELECT n.iid, n.name, n.version, 1, 'Running', n.parent, {NOW}, {NOW}"
            " FROM json_to_recordset(%(n)s::json) AS n(idx int, iid text,"
            f" name text, version text, parent text, pos int) WHERE n.idx {in_ok}"
            " ORDER BY n.pos ON CONFLICT (instance_id) DO NOTHING"
            " RETURNING instance_id)"
        )
    if "q" in groups:
        # mode 0: outbound to an existing (or just created) instance;
        # 1: a created child's start message; 2: on_conflict of a child
        # that was not created.
        if "n" in groups:
            mode = (
                f"CASE q.mode WHEN 0 THEN q.target IN (SELECT instance_id FROM kids)"
                f" OR {exists} WHEN 1 THEN q.child IN (SELECT instance_id FROM kids)"
                f" ELSE q.child NOT IN (SELECT instance_id FROM kids) AND {exists} END"
            )
        else:
            mode = f"q.mode <> 1 AND {exists}"  # no child was created
        ctes.append(
            f"sent AS (INSERT INTO {s}.messages (instance_id, kind, body,"
            " visible_at, key, occurred_at) SELECT q.target, q.kind, q.body,"
            f" coalesce(q.vis, {NOW}), q.key, coalesce(q.vis, {NOW})"
            " FROM json_to_recordset(%(q)s::json) AS q(idx int, mode int,"
            " child text, target text, kind text, body text, vis float8,"
            f" key text, pos int) WHERE q.idx {in_ok} AND {mode}"
            " ORDER BY q.pos RETURNING visible_at, instance_id)"
        )
    if "d" in groups:
        ctes.append(
            f"drops AS (DELETE FROM {s}.messages m USING json_to_recordset("
            " %(d)s::json) AS d(idx int, iid text, key text)"
            f" WHERE m.instance_id = d.iid AND m.key = d.key AND d.idx {in_ok})"
        )
    pairs = []
    if "w" in groups:
        # New activities: this runtime's worker takes them while it has
        # room (spare_act); others are woken only when it has none.
        pairs.append(
            (
                "ch_act",
                f"%(spare_act)s <= {NOW}"
                f" AND EXISTS (SELECT 1 FROM work WHERE visible_at <= {NOW})",
            )
        )
    if ends:
        pairs.append(
            (
                "ch_inst",
                "EXISTS (SELECT 1 FROM ok WHERE status <> 'Running'"
                " OR custom IS NOT NULL)"
                # Only while a client waits (_pg_members.Membership.watch).
                f" AND EXISTS (SELECT 1 FROM {s}.waiters WHERE until > {NOW})",
            )
        )
    woken = "0"
    if pairs or "q" in groups:
        ctes.append(wake(*pairs, targeted=s if "q" in groups else ""))
        woken = "(SELECT count(*) FROM wake)"
    claims = (
        "array(SELECT lock_token FROM work WHERE lock_token IS NOT NULL),"
        " array(SELECT id FROM work WHERE lock_token IS NOT NULL)"
        if "w" in groups
        else "ARRAY[]::text[], ARRAY[]::bigint[]"
    )
    return (
        "WITH "
        + ", ".join(ctes)
        # One JSON value: the caller reads it without a type loader.
        + f" SELECT json_build_array(array(SELECT idx FROM ok), {woken}, {claims})"
    )
