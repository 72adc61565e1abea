"""No provider statement reads a whole table once the tables are mid-sized.

Regression (issue 17): PostgreSQL assumes 100 rows for a JSON parameter,
and for 100 rows it joined ``instances`` by a hash join over a sequential
scan of every row, until the table passed ~30,000 rows. A sequential
workflow commits one turn at a time, so with 10,000 finished instances
kept a step cost 3.1 ms instead of 0.74 (4.6 ms at 20,000). Such a cliff is
invisible to every functional test, so this one audits plans: a real
runtime and client run a mixed workload (activities, timers, events, a
sub-orchestration, a race whose loser is cancelled, continue-as-new,
heartbeats and lease renewals, completions from a second runtime, cancel,
delete, listing) on tables holding 20,000 finished instances, 5,000
parked queue rows and 5,000 activity items leased by other workers,
analyzed as the runtime's own ANALYZE (`_pg_vacuum`) or autovacuum leaves
them, and PostgreSQL's ``auto_explain`` reports the plan of every statement
as it runs. None may scan ``instances``, ``history``, ``messages`` or
``activities`` sequentially, nor read a whole index of one outside a
``LIMIT`` (regression, eleventh session: a step's acknowledgement and a
completion read every item in flight).

The same workload runs on a SQLite file of the same size, each statement
SQLite runs is traced, and ``EXPLAIN QUERY PLAN`` of each must not scan
one of those tables either (whole or through an index not searched by a
key): a missing index would show up here before it shows up as a slow
deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

import perdure
from perdure.providers._pg_schema import quote_ident

_BIG = frozenset({"instances", "history", "messages", "activities"})
_ROWS = 20_000
# auto_explain, loaded into every session the provider opens (startup
# options, as a superuser may), reports each plan as a NOTICE to the client.
_EXPLAIN = " ".join(
    f"-c {k}={v}"
    for k, v in {
        "session_preload_libraries": "auto_explain",
        "auto_explain.log_min_duration": "0",
        "auto_explain.log_level": "notice",
        "auto_explain.log_format": "json",
        "auto_explain.log_nested_statements": "on",
    }.items()
)


@perdure.activity(name="plans.inc")
async def inc(ctx: perdure.ActivityContext, x: int) -> int:
    return x + 1


@perdure.activity(name="plans.beat")
async def beat(ctx: perdure.ActivityContext, x: int) -> int:
    for i in range(8):  # outlives a renewal interval, saving heartbeats
        ctx.heartbeat(i)
        await asyncio.sleep(0.1)
    return x


@perdure.activity(name="plans.slow")
async def slow(ctx: perdure.ActivityContext, x: int) -> int:
    await ctx.cancelled  # (the race's timer wins)
    return x


@perdure.orchestration(name="plans.seq")
async def seq(ctx: perdure.OrchestrationContext, x: int) -> int:
    x = await ctx.schedule_activity("plans.inc", x)
    return int(await ctx.schedule_activity("plans.beat", x))


@perdure.orchestration(name="plans.mix")
async def mix(ctx: perdure.OrchestrationContext, x: int) -> int:
    await ctx.schedule_timer(0.05)
    got = await ctx.schedule_wait("go") if x < 10 else 0
    y = await ctx.schedule_sub_orchestration(
        "plans.seq", x, instance_id=f"{ctx.instance_id}-kid{x}"
    )
    # The loser (the activity) is cancelled: a turn that deletes work.
    await ctx.select(ctx.schedule_activity("plans.slow", 1), ctx.schedule_timer(0.05))
    ctx.set_custom_status({"y": y})
    if x == 0:
        ctx.continue_as_new(10)
    return int(y) + int(got)


@perdure.orchestration(name="plans.waiter")
async def waiter(ctx: perdure.OrchestrationContext, x: int) -> int:
    return int(await ctx.schedule_wait("never"))


@pytest.fixture
def schema_url(pg_url: str) -> Iterator[tuple[str, str]]:
    schema = f"perdure_plans_{uuid.uuid4().hex[:10]}"
    yield schema, f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")


def _auto_explain(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.Error as exc:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"auto_explain is not available: {exc}")
            pytest.skip(f"auto_explain is not available: {exc}")


def _fill(pg_url: str, schema: str) -> None:
    """Finished instances with their history, and parked queue rows."""
    s = quote_ident(schema)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {s}.instances (instance_id, name, version,"
            " execution_id, status, created_at, updated_at, history_len)"
            " SELECT 'done-' || g, 'plans.seq', '', 1, 'Completed', g, g, 2"
            " FROM generate_series(1, %s) g",
            (_ROWS,),
        )
        conn.execute(
            f"INSERT INTO {s}.history (instance_id, execution_id, event_id, data)"
            " SELECT 'done-' || g, 1, e, '{}'"
            " FROM generate_series(1, %s) g, generate_series(1, 2) e",
            (_ROWS,),
        )
        # Far-future timers and work nobody here takes: rows the fetches
        # must step over by index, as in a system with sleeping workflows.
        conn.execute(
            f"INSERT INTO {s}.messages (instance_id, kind, body, visible_at,"
            " occurred_at) SELECT 'done-' || g, 'event', '{}', 1e12, 1e12"
            " FROM generate_series(1, %s) g",
            (_ROWS // 4,),
        )
        conn.execute(
            f"INSERT INTO {s}.activities (instance_id, execution_id, event_id,"
            " name, body, visible_at, attempt) SELECT 'done-' || g, 1, 1,"
            " 'plans.nobody', '{}', 1e12, 0 FROM generate_series(1, %s) g",
            (_ROWS // 4,),
        )
        # Work in flight elsewhere: items leased by other workers (long
        # activities). What an acknowledgement, renewal or completion costs
        # must not depend on how many there are.
        conn.execute(
            f"INSERT INTO {s}.activities (instance_id, execution_id, event_id,"
            " name, body, visible_at, lock_token, attempt) SELECT 'done-' || g,"
            " 1, 2, 'plans.nobody', '{}', 1e12, 'elsewhere-' || g, 1"
            " FROM generate_series(1, %s) g",
            (_ROWS // 4,),
        )
        conn.execute(
            f"ANALYZE {s}.instances, {s}.history, {s}.messages, {s}.activities"
        )


async def _workload(url: str) -> None:
    async with (
        perdure.Runtime(
            url,
            orchestrations=[seq, mix, waiter],
            activities=[inc, slow],
            lock_timeout=0.6,
            turn_timeout=0.3,
        ),
        # A worker of its own for "plans.beat": its results are not the
        # orchestrations' runtime's to fuse, so they are completed apart.
        perdure.Runtime(url, activities=[beat], lock_timeout=0.6, turn_timeout=0.3),
        perdure.Client(url) as client,
    ):
        for i in range(3):
            await client.start_orchestration(f"m{i}", mix, i)
            await client.start_orchestration(f"w{i}", waiter, i)
        await asyncio.sleep(0.3)
        for i in range(3):
            await client.raise_event(f"m{i}", "go", 5)
        await client.cancel_instance("w0")
        for i in range(3):
            await client.wait_for_orchestration(f"m{i}", timeout=60)
        await client.get_history("m1")
        await client.list_instances(status="Completed", limit=5)
        await client.list_instances(name=mix, limit=5)
        await client.delete_instance("m1")
        await client.delete_instance("w1", force=True)


def _seq_scans(plan: dict[str, Any], limited: bool = False) -> Iterator[str]:
    """The whole-table reads of a big table in *plan*.

    A sequential scan, or an index scan without an index condition (every
    entry of the index, e.g. every leased item) unless it is read by a
    ``Limit`` directly, which stops it after a few rows (newest first). One
    under a join or a sort below the ``Limit`` is read whole.
    """
    kind = plan.get("Node Type", "")
    if kind == "Seq Scan" and plan.get("Relation Name") in _BIG:
        yield str(plan["Relation Name"])
    if (
        kind in ("Index Scan", "Index Only Scan")
        and plan.get("Relation Name") in _BIG
        and "Index Cond" not in plan
        and not limited
    ):
        yield f"{plan['Relation Name']} (all of {plan.get('Index Name')})"
    for child in plan.get("Plans", []):
        yield from _seq_scans(child, kind == "Limit")


async def test_no_statement_scans_a_big_table(
    pg_url: str, schema_url: tuple[str, str]
) -> None:
    _auto_explain(pg_url)
    schema, url = schema_url
    async with perdure.Client(url) as client:
        await client.get_status("none")  # creates and migrates the schema
    _fill(pg_url, schema)

    plans: list[dict[str, Any]] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        text = diag.message_primary or ""
        if text.startswith("duration:") and "plan:" in text:
            plans.append(json.loads(text.split("plan:", 1)[1]))

    connect = psycopg.AsyncConnection.connect

    async def explained(*args: Any, **kwargs: Any) -> Any:
        conn = await connect(*args, **kwargs)
        conn.add_notice_handler(keep)
        return conn

    options = quote(_EXPLAIN)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.AsyncConnection, "connect", explained)
        await _workload(f"{url}&options={options}")

    texts = {p["Query Text"] for p in plans}
    # The audit saw the statements that matter: the commit of fused turns,
    # both fetches, completions, renewals, heartbeats, starts and deletes.
    for needle in (
        "json_to_recordset",
        "WITH cand AS",
        "WITH lim AS",
        "done AS (DELETE",
        "WITH held AS",
        "WITH beats AS",
        "made AS (INSERT",
        "DELETE FROM",
    ):
        assert any(needle in t for t in texts), needle
    scans = {
        p["Query Text"][:200]: sorted(set(_seq_scans(p["Plan"])))
        for p in plans
        if any(True for _ in _seq_scans(p["Plan"]))
    }
    assert not scans, json.dumps(scans, indent=1)


def _fill_sqlite(path: str) -> None:
    """The same finished instances, history, parked and leased queue rows."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g"
            " WHERE v < ?) INSERT INTO instances (instance_id, name, version,"
            " execution_id, status, created_at, updated_at, history_len)"
            " SELECT 'done-' || v, 'plans.seq', '', 1, 'Completed', v, v, 2 FROM g",
            (_ROWS,),
        )
        conn.execute(
            "INSERT INTO history (instance_id, execution_id, event_id, data)"
            " SELECT instance_id, 1, e.v, '{}' FROM instances,"
            " (SELECT 1 AS v UNION ALL SELECT 2) e"
        )
        conn.execute(
            "INSERT INTO messages (instance_id, kind, body, visible_at,"
            " occurred_at) SELECT instance_id, 'event', '{}', 1e12, 1e12"
            " FROM instances LIMIT ?",
            (_ROWS // 4,),
        )
        conn.execute(
            "INSERT INTO activities (instance_id, execution_id, event_id, name,"
            " body, visible_at) SELECT instance_id, 1, 1, 'plans.nobody', '{}',"
            " 1e12 FROM instances LIMIT ?",
            (_ROWS // 4,),
        )
        conn.execute(
            "INSERT INTO activities (instance_id, execution_id, event_id, name,"
            " body, visible_at, lock_token, attempt) SELECT instance_id, 1, 2,"
            " 'plans.nobody', '{}', 1e12, 'elsewhere-' || instance_id, 1"
            " FROM instances LIMIT ?",
            (_ROWS // 4,),
        )


# "SCAN t" reads the whole table; "SCAN t USING [COVERING] INDEX i" the
# whole index. A keyed read is "SEARCH t USING ...".
_SCAN = re.compile(r"SCAN (\w+)")


async def test_no_sqlite_statement_scans_a_big_table(sqlite_url: str) -> None:
    url = sqlite_url
    path = url.removeprefix("sqlite:///")
    async with perdure.Client(url) as client:
        await client.get_status("none")  # creates and migrates the file
    _fill_sqlite(path)

    statements: set[str] = set()
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(*args, **kwargs)
        conn.set_trace_callback(statements.add)  # with the values inlined
        return conn

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite3, "connect", traced)
        await _workload(url)

    # The workload reached the statements that matter.
    for needle in ("INSERT INTO instances", "DELETE FROM activities", "history"):
        assert any(needle in text for text in statements), needle
    scans: dict[str, list[str]] = {}
    with contextlib.closing(connect(path)) as conn:
        for text in statements:
            if not re.match(r"(?is)\s*(select|insert|update|delete|with)\b", text):
                continue  # BEGIN, COMMIT, PRAGMA, SAVEPOINT ...
            plan = conn.execute("EXPLAIN QUERY PLAN " + text).fetchall()
            bad = [
                row[-1]
                for row in plan
                if (m := _SCAN.match(row[-1])) and m.group(1) in _BIG
            ]
            if bad:
                scans[text[:200]] = bad
    assert not scans, json.dumps(scans, indent=1)
