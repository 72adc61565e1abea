"""The PostgreSQL commit statement is written for each batch's shape (issue 17).

PostgreSQL sets up every step of a statement even when its rows are empty,
so `perdure.providers._pg_commit_sql.CommitSql` leaves out the steps of row
groups a batch does not fill. These tests pin that every one of the 512
shapes is a statement PostgreSQL accepts and runs on a migrated schema, and
that a shape holds exactly the steps its groups need. What each step writes
is covered by the provider conformance suite, which commits every kind of
turn through these statements. One more pins how a batch's guard runs: once
per statement, not once per turn.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from perdure.providers import _pg_raw as raw
from perdure.providers._pg_commit_sql import GROUPS, CommitSql
from perdure.providers._pg_schema import quote_ident
from perdure.providers.postgres import PostgresProvider

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


def _params(groups: tuple[str, ...]) -> dict[str, str]:
    # text() only asks whether a group is empty; "[{}]" stands for rows.
    return {"t": "[{}]", **{g: "[{}]" if g in groups else "[]" for g in GROUPS}}


def _shapes() -> list[tuple[tuple[str, ...], bool]]:
    return [
        (groups, ends)
        for size in range(len(GROUPS) + 1)
        for groups in itertools.combinations(GROUPS, size)
        for ends in (False, True)
    ]


def test_a_shape_has_exactly_the_steps_of_its_groups() -> None:
    sql = CommitSql('"s"')
    for groups, ends in _shapes():
        text = sql.text(_params(groups), ends)
        for group, steps in _STEPS.items():
            for step in steps:
                assert (step in text) == (group in groups), (groups, step)
        # Only a batch with a turn that ends (or sets a status) may wake a
        # waiting client; only new work wakes activity workers.
        assert ("waiters" in text) == ends
        assert ("ch_act" in text) == ("w" in groups)
        assert ("wake AS" in text) == (ends or "w" in groups or "q" in groups)
    assert len(sql._texts) == 2 ** len(GROUPS) * 2


def test_the_same_shape_is_the_same_text() -> None:
    # One text per shape, so that psycopg prepares each shape once.
    sql = CommitSql('"s"')
    first = sql.text(_params(("e", "w")), False)
    assert sql.text(_params(("w", "e")), False) is first
    assert sql.text(_params(("e", "w")), True) != first


async def test_every_shape_runs_on_a_migrated_schema(pg_url: str) -> None:
    provider = PostgresProvider(
        pg_url, schema=f"perdure_shapes_{uuid.uuid4().hex[:10]}"
    )
    await provider.open()
    try:
        sql = provider._sql.commit
        empty = {"t": "[]", **dict.fromkeys(GROUPS, "[]")}
        async with provider._connection() as conn:
            for groups, ends in _shapes():
                text = sql.text(_params(groups), ends)
                # Empty groups: the statement plans and runs and commits
                # nothing (no turn passes the guard).
                rows = await raw.fetch(conn, text, {**empty, **provider._wake_params})
                assert json.loads(rows[0][0] or "") == [[], 0, [], []], groups
    finally:
        await provider.drop_schema()
        await provider.close()


def _loops_over(plan: dict[str, Any], cte: str) -> list[int]:
    """The loop counts of every plan node that reads the CTE *cte*."""
    found = []
    if plan.get("CTE Name") == cte:
        found.append(int(plan["Actual Loops"]))
    for child in plan.get("Plans", []):
        found.extend(_loops_over(child, cte))
    return found


async def test_a_batch_checks_its_held_items_once_not_once_per_turn(
    pg_url: str,
) -> None:
    # Regression (issue 17): the guard "every acknowledged item is still
    # held" was correlated to each turn, and the planner, expecting one
    # turn, ran it once per turn, each time reading every acknowledged item
    # of the batch: quadratic in the batch size (5.5 of 7.6 ms of server
    # time for a batch of 110 fused turns).
    provider = PostgresProvider(pg_url, schema=f"perdure_acks_{uuid.uuid4().hex[:10]}")
    await provider.open()
    s = quote_ident(provider.schema)
    n = 40
    try:
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
    finally:
        await provider.drop_schema()
        await provider.close()
