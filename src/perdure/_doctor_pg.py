"""The PostgreSQL checks of ``perdure doctor`` (see `perdure._doctor`)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ._doctor import Report, schema_check
from .providers._pg_conn import application_name, detect_pooler
from .providers._pg_schema import measure_skew, quote_ident, split_url

__all__ = ["check_postgres"]

Conn = psycopg.AsyncConnection[Any]

# Thresholds of a problem.
_MAX_SKEW = 2.0  # seconds between this host's clock and the database's
_MAX_XACT_AGE = 600.0  # seconds a transaction may hold back vacuum
_DEAD_ROWS = 10_000  # dead rows in a queue table, when also > 2x live ones


def _target(conninfo: str) -> str:
    """``host:port`` (several, comma-separated, for a multi-host URL)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "?"
    hosts = str(params.get("host") or "localhost").split(",")
    ports = str(params.get("port") or "5432").split(",")
    if len(ports) < len(hosts):
        ports += [ports[-1]] * (len(hosts) - len(ports))
    return ",".join(f"{h}:{p}" for h, p in zip(hosts, ports, strict=False))


async def check_postgres(url: str, *, runtimes: int, pool_size: int) -> Report:
    """Run every check against the database at *url*."""
    conninfo, schema = split_url(url, None)
    report = Report(f"PostgreSQL {_target(conninfo)}, schema {schema}")
    try:
        given = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        report.add("url", False, " ".join(str(exc).split()))
        return report
    kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
    if "connect_timeout" not in given:
        kwargs["connect_timeout"] = 5
    if "application_name" not in given:
        kwargs["application_name"] = application_name("doctor")
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, **kwargs)
    except psycopg.Error as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        report.add("connect", False, f"cannot connect to {_target(conninfo)}: {text}")
        return report
    try:
        report.target = f"PostgreSQL {conn.info.host}:{conn.info.port}, schema {schema}"
        await _checks(conn, report, schema, runtimes, pool_size)
    except psycopg.Error as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        report.add("query", False, f"{conn.info.host}:{conn.info.port}: {text}")
    finally:
        await conn.close()
    return report


async def _value(conn: Conn, sql: str, params: Any = None) -> Any:
    cursor = await conn.execute(sql, params)
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def _checks(
    conn: Conn, report: Report, schema: str, runtimes: int, pool_size: int
) -> None:
    version = await _value(conn, "SHOW server_version")
    in_recovery = await _value(conn, "SELECT pg_is_in_recovery()")
    report.add(
        "server",
        not in_recovery,
        f"PostgreSQL {version}"
        + (
            " is a read-only standby: point the URL at the primary"
            if in_recovery
            else ""
        ),
    )
    if not in_recovery:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute("SELECT txid_current()")  # makes the commit write
        latency = (time.perf_counter() - started) * 1000
        report.add("commit", True, f"{latency:.1f} ms for one commit (round trip)")
    table = f"{quote_ident(schema)}.schema_version"
    applied = None
    if await _value(conn, "SELECT to_regclass(%s) IS NOT NULL", (table,)):
        applied = await _value(conn, f"SELECT max(version) FROM {table}")
    schema_check(report, "postgres", applied)
    pooled = await detect_pooler(conn)
    report.add(
        "pooler",
        True,
        "detected: no prepared statements, no LISTEN through it; other"
        " processes' work is polled for (<= 0.2 s) unless listen_url= gives"
        " a direct connection"
        if pooled
        else "none: wake-ups across processes by LISTEN/NOTIFY",
    )
    skew = await measure_skew(conn)
    report.add(
        "clock",
        abs(skew) <= _MAX_SKEW,
        f"database clock {skew:+.3f} s from this host's"
        + ("" if abs(skew) <= _MAX_SKEW else ": fix NTP on one of them"),
    )
    await _connections(conn, report, runtimes, pool_size, pooled)
    await _vacuum(conn, report, schema)


async def _connections(
    conn: Conn, report: Report, runtimes: int, pool_size: int, pooled: bool
) -> None:
    limit = int(await _value(conn, "SHOW max_connections"))
    reserved = int(await _value(conn, "SHOW superuser_reserved_connections"))
    used = int(await _value(conn, "SELECT count(*) FROM pg_stat_activity"))
    # Each runtime: its pool plus one LISTEN connection.
    needed = runtimes * (pool_size + 1)
    room = limit - reserved
    detail = (
        f"{runtimes} runtime(s) x ({pool_size} pooled + 1 listener) = {needed};"
        f" max_connections {limit} ({reserved} reserved), {used} in use now"
    )
    if pooled:
        report.add("connections", True, detail + "; the pooler's limits apply first")
    elif needed > room:
        report.add("connections", False, detail + ": raise max_connections or pool")
    else:
        report.add("connections", True, detail)


async def _vacuum(conn: Conn, report: Report, schema: str) -> None:
    autovacuum = await _value(conn, "SHOW autovacuum")
    report.add(
        "autovacuum",
        autovacuum == "on",
        "on" if autovacuum == "on" else "off: the queue tables will bloat; turn it on",
    )
    cursor = await conn.execute(
        "SELECT pid, application_name,"
        " extract(epoch FROM clock_timestamp() - xact_start)::float8"
        # An idle transaction that wrote holds the horizon with its xid.
        " FROM pg_stat_activity"
        " WHERE (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)"
        " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        " ORDER BY xact_start LIMIT 1"
    )
    row = await cursor.fetchone()
    if row is None or row[2] <= _MAX_XACT_AGE:
        age = 0.0 if row is None else row[2]
        report.add("xmin horizon", True, f"oldest open transaction {age:.0f} s")
    else:
        report.add(
            "xmin horizon",
            False,
            f"transaction of pid {row[0]} ({row[1] or 'no application_name'}) open"
            f" {row[2]:.0f} s holds back vacuum of every table",
        )
    cursor = await conn.execute(
        "SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables"
        " WHERE schemaname = %s ORDER BY n_dead_tup DESC",
        (schema,),
    )
    bloated = [
        f"{name} {dead} dead / {live} live"
        for name, live, dead in await cursor.fetchall()
        if dead > _DEAD_ROWS and dead > 2 * live
    ]
    report.add(
        "dead rows",
        not bloated,
        "; ".join(bloated) + " (is vacuum keeping up?)"
        if bloated
        else "queue tables within bounds",
    )
