#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501
"""Workload D ("long-history") on DBOS Transact (SQLite system DB): 1 workflow calls M steps
sequentially. Reports total wall, mean ms/step, and ms/step over the first and last 10% of steps.

Usage: python dbos_longhistory.py M
"""

import argparse
import json
import resource
import shutil
import tempfile
import time

from dbos import DBOS

ap = argparse.ArgumentParser()
ap.add_argument("m", type=int)
a = ap.parse_args()

tmp = tempfile.mkdtemp(prefix="dbos-long-")
DBOS(
    config={
        "name": "bench",
        "system_database_url": f"sqlite:///{tmp}/dbos.sqlite",
        "log_level": "WARNING",
    }
)
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
t0 = time.perf_counter()
r = DBOS.start_workflow(long_wf, a.m).get_result()
t1 = time.perf_counter()
DBOS.destroy()
shutil.rmtree(tmp, ignore_errors=True)
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
            "storage": "sqlite-file",
            "wall_s": round(wall, 4),
            "ms_per_act": round(wall / a.m * 1000, 3),
            "ms_per_act_first10pct": round(first, 3),
            "ms_per_act_last10pct": round(last, 3),
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": 0 if r == a.m else 1,
        }
    )
)
