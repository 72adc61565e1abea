#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501
"""Workload D ("long-history") on duroxide: 1 orchestration calls M activities sequentially.
Reports total wall, mean ms/activity, and ms/activity over the first and last 10% of steps
(measured from in-process activity execution timestamps) to expose replay-cost growth.

Usage: python duroxide_longhistory.py M [--mem] [--oc K] [--wc K] [--poll-ms MS]
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

os.environ.setdefault("RUST_LOG", "error")  # duroxide's Rust tracing logs to STDOUT
from duroxide import Client, Runtime, RuntimeOptions, SqliteProvider

ap = argparse.ArgumentParser()
ap.add_argument("m", type=int)
ap.add_argument("--mem", action="store_true")
ap.add_argument("--oc", type=int, default=None)
ap.add_argument("--wc", type=int, default=None)
ap.add_argument("--poll-ms", type=int, default=None)
a = ap.parse_args()

tmp = tempfile.mkdtemp(prefix="dx-long-")
prov = (
    SqliteProvider.in_memory()
    if a.mem
    else SqliteProvider.open(os.path.join(tmp, "dx.db"))
)
rt = Runtime(
    prov,
    RuntimeOptions(
        orchestration_concurrency=a.oc,
        worker_concurrency=a.wc,
        dispatcher_poll_interval_ms=a.poll_ms,
    ),
)
stamps = []


@rt.register_activity("inc")
def inc(ctx, x):
    stamps.append(time.perf_counter())
    return x + 1


@rt.register_orchestration("long")
def long_orch(ctx, m):
    x = 0
    for _ in range(m):
        x = yield ctx.schedule_activity("inc", x)
    return x


rt.start()
client = Client(prov)
t0 = time.perf_counter()
client.start_orchestration("long-1", "long", a.m)
st = client.wait_for_orchestration("long-1", 600_000)
t1 = time.perf_counter()
rt.shutdown(2000)
if st.status != "Completed":
    print("BAD", st.status, st.output, st.error, file=sys.stderr)
shutil.rmtree(tmp, ignore_errors=True)
wall = t1 - t0
k = max(1, len(stamps) // 10)
first = (stamps[k] - stamps[0]) / k * 1000 if len(stamps) > k else None
last = (stamps[-1] - stamps[-1 - k]) / k * 1000 if len(stamps) > k else None
print(
    json.dumps(
        {
            "peer": "duroxide",
            "workload": "longhistory",
            "m": a.m,
            "storage": "sqlite-mem" if a.mem else "sqlite-file",
            "oc": a.oc,
            "wc": a.wc,
            "poll_ms": a.poll_ms,
            "wall_s": round(wall, 4),
            "ms_per_act": round(wall / a.m * 1000, 3),
            "ms_per_act_first10pct": round(first, 3) if first else None,
            "ms_per_act_last10pct": round(last, 3) if last else None,
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": 0 if (st.status == "Completed" and st.output == a.m) else 1,
        }
    )
)
