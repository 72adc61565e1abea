#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501
"""Workload B ("fanout") on duroxide: 1 orchestration fans out N activities via ctx.all() and joins.

Usage: python duroxide_fanout.py N [--mem] [--oc K] [--wc K] [--poll-ms MS]
Prints one JSON line. Wall time = start_orchestration -> completion seen.
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
ap.add_argument("n", type=int)
ap.add_argument("--mem", action="store_true")
ap.add_argument("--oc", type=int, default=None)
ap.add_argument("--wc", type=int, default=None)
ap.add_argument("--poll-ms", type=int, default=None)
a = ap.parse_args()

tmp = tempfile.mkdtemp(prefix="dx-fanout-")
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
rt.register_activity("inc", lambda ctx, x: x + 1)


@rt.register_orchestration("fanout")
def fanout(ctx, n):
    res = yield ctx.all([ctx.schedule_activity("inc", i) for i in range(n)])
    # join results come back as [{"ok": v}, ...]
    return sum(r["ok"] for r in res)


rt.start()
client = Client(prov)
t0 = time.perf_counter()
client.start_orchestration("fan-1", "fanout", a.n)
st = client.wait_for_orchestration("fan-1", 600_000)
t1 = time.perf_counter()
rt.shutdown(2000)
if st.status != "Completed":
    print("BAD", st.status, st.output, st.error, file=sys.stderr)
shutil.rmtree(tmp, ignore_errors=True)
expect = a.n * (a.n + 1) // 2
wall = t1 - t0
print(
    json.dumps(
        {
            "peer": "duroxide",
            "workload": "fanout",
            "n": a.n,
            "storage": "sqlite-mem" if a.mem else "sqlite-file",
            "oc": a.oc,
            "wc": a.wc,
            "poll_ms": a.poll_ms,
            "wall_s": round(wall, 4),
            "acts_per_s": round(a.n / wall, 2),
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": 0 if (st.status == "Completed" and st.output == expect) else 1,
        }
    )
)
