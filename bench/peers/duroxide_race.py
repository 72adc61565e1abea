#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501
"""Workload C ("race") on duroxide: N orchestrations, each races a trivial activity against a
60 s durable timer via ctx.race() and returns the winner. Loser timers must not delay completion.

Usage: python duroxide_race.py N [--mem] [--oc K] [--wc K] [--poll-ms MS]
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

tmp = tempfile.mkdtemp(prefix="dx-race-")
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


@rt.register_orchestration("race")
def race(ctx, x):
    w = yield ctx.race(ctx.schedule_activity("inc", x), ctx.schedule_timer(60_000))
    return "activity" if w["index"] == 0 else "timer"


rt.start()
client = Client(prov)
ids = [f"race-{i}" for i in range(a.n)]
t0 = time.perf_counter()
for i, iid in enumerate(ids):
    client.start_orchestration(iid, "race", i)
bad = 0
for iid in ids:
    st = client.wait_for_orchestration(iid, 600_000)
    if st.status != "Completed" or st.output != "activity":
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
            "workload": "race",
            "n": a.n,
            "storage": "sqlite-mem" if a.mem else "sqlite-file",
            "oc": a.oc,
            "wc": a.wc,
            "poll_ms": a.poll_ms,
            "wall_s": round(wall, 4),
            "orch_per_s": round(a.n / wall, 2),
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": bad,
        }
    )
)
