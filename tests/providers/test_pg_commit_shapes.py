"""The PostgreSQL commit statement is written for each batch's shape (issue 17).

PostgreSQL sets up every step of a statement even when its rows are empty,
so `perdure.providers._pg_commit_sql.CommitSql` leaves out the steps of row
groups a batch does not fill. These tests pin that every one of the 1,024
shapes (256 sets of groups, with and without an ending turn, for a batch
of one turn and of several) is a statement PostgreSQL accepts and runs on
a migrated schema, and that a shape holds exactly the steps its groups
need. What each step writes is covered by the provider conformance suite,
which commits every kind of turn through these statements. Two more pin
how a batch's guard runs: once per statement, not once per turn; and by
key, whatever else is in the tables.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from perdure.providers import _pg_raw as raw
from perdure.providers._pg_commit_sql import GROUPS, CommitSql
from perdure.providers._pg_schema import quote_ident
from perdure.providers.postgres import PostgresProvider

# The fresh_pg fixture (conftest): opens a provider on a fresh schema.
FreshPostgres = Callable[..., AbstractAsyncContextManager[PostgresProvider]]

_STEPS = {
    "a": ("acked AS", "acks AS"),
    "e": ("events AS",),
    "c": ("consumed AS",),
    "w": ("work AS",),
    "k": ("cancels AS",),
    "n": ("kids AS",),
    "q": ("sent AS",),
    "d": ("drops AS",),
}


def _params(groups: tuple[str, ...], one: bool = False) -> dict[str, str]:
    # text() only asks whether a group is empty; "[{}]" stands for rows.
    params = {"t": "[{}]", **{g: "[{}]" if g in groups else "[]" for g in GROUPS}}
    if one:  # a batch of one turn names its instance
        params["one"] = "i"
    return params


def _shapes() -> list[tuple[tuple[str, ...], bool, bool]]:
    return [
        (groups, ends, one)
        for size in range(len(GROUPS) + 1)
        for groups in itertools.combinations(GROUPS, size)
        for ends in (False, True)
        for one in (False, True)
    ]


def test_a_shape_has_exactly_the_steps_of_its_groups() -> None:
    sql = CommitSql('"s"')
    for groups, ends, one in _shapes():
        text = sql.text(_params(groups, one), ends)
        # A batch of one turn reaches its instance by the key it names.
        assert ("%(one)s" in text) == one
        assert ("ANY(ARRAY(SELECT iid FROM t))" in text) != one
        for group, steps in _STEPS.items():
            for step in steps:
                assert (step in text) == (group in groups), (groups, step)
        # Only a batch with a turn that ends (or sets a status) may wake a
        # waiting client; only new work wakes activity workers.
        assert ("waiters" in text) == ends
        assert ("ch_act" in text) == ("w" in groups)
        assert ("wake AS" in text) == (ends or "w" in groups or "q" in groups)
    assert len(sql._texts) == 2 ** len(GROUPS) * 4


def test_the_same_shape_is_the_same_text() -> None:
    # One text per shape, so that psycopg prepares each shape once.
    sql = CommitSql('"s"')
    first = sql.text(_params(("e", "w")), False)
    assert sql.text(_params(("w", "e")), False) is first
    assert sql.text(_params(("e", "w")), True) != first


async def test_every_shape_runs_on_a_migrated_schema(fresh_pg: FreshPostgres) -> None:
    async with fresh_pg() as provider:
        sql = provider._sql.commit
        empty = {"t": "[]", **dict.fromkeys(GROUPS, "[]")}
        async with provider._connection() as conn:
            for groups, ends, one in _shapes():
                text = sql.text(_params(groups, one), ends)
                # Empty groups: the statement plans and runs and commits
                # nothing (no turn passes the guard).
                params = {**empty, **provider._wake_params}
                if one:
                    params["one"] = "nobody"
                rows = await raw.fetch(conn, text, params)
                assert json.loads(rows[0][0] or "") == [[], 0, [], []], groups


def _loops_over(plan: dict[str, Any], cte: str) -> list[int]:
    """The loop counts of every plan node that reads the CTE *cte*."""
    found = []
    if plan.get("CTE Name") == cte:
        found.append(int(plan["Actual Loops"]))
    for child in plan.get("Plans", []):
        found.extend(_loops_over(child, cte))
    return found


async def test_a_batch_checks_its_held_items_once_not_once_per_turn(
    fresh_pg: FreshPostgres,
) -> None:
    # Regression (issue 17): the guard "every acknowledged item is still
    # held" was correlated to each turn, and the planner, expecting one
    # turn, ran it once per turn, each time reading every acknowledged item
    # of the batch: quadratic in the batch size (5.5 of 7.6 ms of server
    # time for a batch of 110 fused turns).
    n = 40
    async with fresh_pg() as provider:
        s = quote_ident(provider.schema)
        async with provider._connection() as conn:
            turns, acked = [], []
            for i in range(n):
                await conn.execute(
                    f"INSERT INTO {s}.instances (instance_id, name, version,"
                    " execution_id, status, created_at, updated_at, history_len)"
                    " VALUES (%s, 'o', '', 1, 'Running', 0, 0, 2)",
                    (f"i{i}",),
                )
                cursor = await conn.execute(
                    f"INSERT INTO {s}.activities (instance_id, execution_id,"
                    " event_id, name, body, visible_at, lock_token, attempt)"
                    " VALUES (%s, 1, 2, 'a', '{}', 1e12, %s, 1) RETURNING id",
                    (f"i{i}", f"tok{i}"),
                )
                row = await cursor.fetchone()
                assert row is not None
                turns.append(
                    {"idx": i, "iid": f"i{i}", "token": None, "exec": 1,
                     "hstart": 2, "hlen": 2, "status": "Running"}
                )  # fmt: skip
                acked.append({"idx": i, "id": row[0], "token": f"tok{i}"})
            params = {
                **dict.fromkeys(GROUPS, "[]"),
                "t": json.dumps(turns),
                "a": json.dumps(acked),
            }
            text = provider._sql.commit.text(params, False)
            cursor = await conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + text,
                {**params, **provider._wake_params},
            )
            row = await cursor.fetchone()
            assert row is not None
            plan = row[0][0]["Plan"]
            loops = _loops_over(plan, "acked")
            assert loops and max(loops) == 1, loops
            # Every turn passed the guard (the items are held) and its item
            # was deleted with it.
            cursor = await conn.execute(f"SELECT count(*) FROM {s}.activities")
            assert await cursor.fetchone() == (0,)


def _rows_read(plan: dict[str, Any], tables: frozenset[str]) -> dict[str, int]:
    """Rows each scan of *tables* in *plan* returned, over all its loops."""
    read: dict[str, int] = {}
    name = plan.get("Relation Name")
    if name in tables:
        rows = int(plan["Actual Rows"]) * int(plan["Actual Loops"])
        read[name] = read.get(name, 0) + rows
    for child in plan.get("Plans", []):
        for table, rows in _rows_read(child, tables).items():
            read[table] = read.get(table, 0) + rows
    return read


async def test_a_step_reads_its_own_rows_whatever_is_in_flight(
    fresh_pg: FreshPostgres,
) -> None:
    # Regression (issue 17, eleventh session): a sequential workflow's
    # fused step checked "the item it acknowledges is still held" with NOT
    # EXISTS, which PostgreSQL planned as an anti-join over every activity
    # row, and "no due message it did not see" as one over every due
    # message. With 3,000 items in flight elsewhere a step took 1.65 ms
    # instead of 0.99 (`bench/pg_chain.py 2000 --long --leased 3000`).
    k = 3000
    async with fresh_pg() as provider:
        s = quote_ident(provider.schema)
        async with provider._connection() as conn:
            await conn.execute(
                f"INSERT INTO {s}.instances (instance_id, name, version,"
                " execution_id, status, created_at, updated_at, history_len)"
                " SELECT 'other-' || g, 'o', '', 1, 'Running', g, g, 2"
                " FROM generate_series(1, %s) g UNION ALL"
                " SELECT 'x', 'o', '', 1, 'Running', 0, 0, 3",
                (k,),
            )
            # Items leased by other workers, and a backlog of due messages
            # for other instances.
            await conn.execute(
                f"INSERT INTO {s}.activities (instance_id, execution_id,"
                " event_id, name, body, visible_at, lock_token, attempt)"
                " SELECT 'other-' || g, 1, 2, 'a', '{}', 1e12, 'tok-' || g, 1"
                " FROM generate_series(1, %s) g",
                (k,),
            )
            await conn.execute(
                f"INSERT INTO {s}.messages (instance_id, kind, body,"
                " visible_at, occurred_at) SELECT 'other-' || g, 'event',"
                " '{}', 0, 0 FROM generate_series(1, %s) g",
                (k,),
            )
            cursor = await conn.execute(
                f"INSERT INTO {s}.activities (instance_id, execution_id,"
                " event_id, name, body, visible_at, lock_token, attempt)"
                " VALUES ('x', 1, 3, 'a', '{}', 1e12, 'mine', 1) RETURNING id"
            )
            row = await cursor.fetchone()
            assert row is not None
            await conn.execute(f"ANALYZE {s}.instances, {s}.activities, {s}.messages")
            # The fused turn of "x": its result acknowledged (no lock: token
            # NULL), two events, the next activity scheduled.
            turn = {"idx": 0, "iid": "x", "token": None, "exec": 1}
            turn |= {"hstart": 3, "hlen": 5, "status": "Running"}
            work = {"idx": 0, "iid": "x", "exec": 1, "eid": 5, "name": "a"}
            work |= {"body": "{}", "priority": 0, "pos": 0}
            events = [
                {"idx": 0, "iid": "x", "exec": 1, "eid": e, "data": "{}"}
                for e in (4, 5)
            ]
            params = {
                **dict.fromkeys(GROUPS, "[]"),
                "t": json.dumps([turn]),
                "a": json.dumps([{"idx": 0, "id": row[0], "token": "mine"}]),
                "e": json.dumps(events),
                "w": json.dumps([work]),
                "one": "x",
            }
            text = provider._sql.commit.text(params, False)
            values = {**params, **provider._wake_params}
            async with conn.transaction(force_rollback=True):
                cursor = await conn.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + text, values
                )
                explained = await cursor.fetchone()
            assert explained is not None
            read = _rows_read(
                explained[0][0]["Plan"],
                frozenset({"instances", "activities", "messages"}),
            )
            assert max(read.values()) <= 5, read
            # And the statement commits the turn.
            rows = await raw.fetch(conn, text, values)
            assert json.loads(rows[0][0] or "")[0] == [0]
            cursor = await conn.execute(
                f"SELECT count(*) FROM {s}.activities WHERE instance_id = 'x'"
            )
            assert await cursor.fetchone() == (1,)  # the new one, not "mine"
