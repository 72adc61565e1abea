#!/usr/bin/env python3
"""Workload D ("long-history") on DBOS Transact with a PostgreSQL system database.

1 workflow calls M steps sequentially; the same script as
``dbos_longhistory.py`` (vendored from shared/bench-peers) with the system
database on PostgreSQL, for same-server comparisons with perdure
(``bench/perdure_longhistory.py --url``). Also reports the server's
transactions per step (``pg_stat_database.xact_commit`` of the database).

Usage: python dbos_long_pg.py M [--url postgresql://postgres@127.0.0.1:5432/dbos_bench_sys]
"""

import argparse
import json
import resource
import time

import psycopg
from dbos import DBOS

ap = argparse.ArgumentParser()
ap.add_argument("m", type=int)
ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/dbos_bench_sys")
a = ap.parse_args()


def commits() -> int:
    with psycopg.connect(a.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        return int(row[0])


DBOS(config={"name": "bench", "system_database_url": a.url, "log_level": "WARNING"})
stamps = []


@DBOS.step()
def inc(x):
    stamps.append(time.perf_counter())
    return x + 1


@DBOS.workflow()
def long_wf(m):
    x = 0
    for _ in range(m):
        x = inc(x)
    return x


DBOS.launch()
c0 = commits()
t0 = time.perf_counter()
r = DBOS.start_workflow(long_wf, a.m).get_result()
t1 = time.perf_counter()
c1 = commits()
DBOS.destroy()
wall = t1 - t0
k = max(1, len(stamps) // 10)
first = (stamps[k] - stamps[0]) / k * 1000
last = (stamps[-1] - stamps[-1 - k]) / k * 1000
print(
    json.dumps(
        {
            "peer": "dbos",
            "workload": "longhistory",
            "m": a.m,
            "storage": "postgres",
            "wall_s": round(wall, 4),
            "ms_per_act": round(wall / a.m * 1000, 3),
            "ms_per_act_first10pct": round(first, 3),
            "ms_per_act_last10pct": round(last, 3),
            "commits_per_step": round((c1 - c0 - 1) / a.m, 3),
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": 0 if r == a.m else 1,
        }
    )
)
