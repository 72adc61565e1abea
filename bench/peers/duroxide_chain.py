#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
"""Workload A ("chain") on duroxide: N orchestrations x 3 sequential activities.

Usage: python duroxide_chain.py N [--mem] [--oc K] [--wc K] [--poll-ms MS]
Prints one JSON line. Wall time = first start_orchestration -> last completion seen.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

os.environ.setdefault(
    "RUST_LOG", "error"
)  # duroxide's Rust tracing logs to STDOUT; silence lock-retry WARNs
from duroxide import Client, Runtime, RuntimeOptions, SqliteProvider

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("--mem", action="store_true", help="in-memory SQLite instead of a file")
ap.add_argument(
    "--oc", type=int, default=None, help="orchestration_concurrency (SDK default 2)"
)
ap.add_argument(
    "--wc", type=int, default=None, help="worker_concurrency (SDK default 2)"
)
ap.add_argument(
    "--poll-ms",
    type=int,
    default=None,
    help="dispatcher_poll_interval_ms (SDK default 100)",
)
a = ap.parse_args()

tmp = tempfile.mkdtemp(prefix="dx-chain-")
db = os.path.join(tmp, "dx.db")
prov = SqliteProvider.in_memory() if a.mem else SqliteProvider.open(db)
rt = Runtime(
    prov,
    RuntimeOptions(
        orchestration_concurrency=a.oc,
        worker_concurrency=a.wc,
        dispatcher_poll_interval_ms=a.poll_ms,
    ),
)
rt.register_activity("inc", lambda ctx, x: x + 1)


@rt.register_orchestration("chain")
def chain(ctx, x):
    x = yield ctx.schedule_activity("inc", x)
    x = yield ctx.schedule_activity("inc", x)
    x = yield ctx.schedule_activity("inc", x)
    return x


rt.start()
client = Client(prov)
ids = [f"chain-{i}" for i in range(a.n)]
t0 = time.perf_counter()
for i, iid in enumerate(ids):
    client.start_orchestration(iid, "chain", i)
t_started = time.perf_counter()
bad = 0
for i, iid in enumerate(ids):
    st = client.wait_for_orchestration(iid, 600_000)
    if st.status != "Completed" or st.output != i + 3:
        bad += 1
        print("BAD", iid, st.status, st.output, st.error, file=sys.stderr)
t1 = time.perf_counter()
rt.shutdown(2000)
shutil.rmtree(tmp, ignore_errors=True)
wall = t1 - t0
print(
    json.dumps(
        {
            "peer": "duroxide",
            "workload": "chain",
            "n": a.n,
            "storage": "sqlite-mem" if a.mem else "sqlite-file",
            "oc": a.oc,
            "wc": a.wc,
            "poll_ms": a.poll_ms,
            "wall_s": round(wall, 4),
            "start_phase_s": round(t_started - t0, 4),
            "orch_per_s": round(a.n / wall, 2),
            "acts_per_s": round(3 * a.n / wall, 2),
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": bad,
        }
    )
)
