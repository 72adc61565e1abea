#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501
"""Workload E ("blockrace") on duroxide: N orchestrations, each races two multi-step blocks and
returns the winner's result:
  block A: inc, inc, inc                      -> x+3 (must win)
  block B: inc, 60 s durable timer, inc       -> must lose and be cancelled
duroxide's ctx.race() takes exactly two single task descriptors and cannot race inline multi-step
blocks, so each block is a registered sub-orchestration and the parent races the two
ctx.schedule_sub_orchestration(...) descriptors. Every blockrace therefore creates 3 instances
(parent + 2 children), each with its own history. The loser child gets a cancel request
("canceled: parent dropped sub-orchestration future", terminal status Failed).

Usage: python duroxide_blockrace.py N [--mem] [--oc K] [--wc K] [--poll-ms MS]
Prints one JSON line. Wall time = first start_orchestration -> last completion seen.
After the timed window it waits (<= 30 s, untimed) for the losers' cancellations to settle and
reports instance/event counts, how many losers ended cancelled, how many other instances ended
Failed (printed as FAILED ... to stderr) and how many were still running.
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
ap.add_argument("n", type=int, nargs="?", default=300)
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

tmp = tempfile.mkdtemp(prefix="dx-blockrace-")
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


@rt.register_orchestration("block_a")
def block_a(ctx, x):
    x = yield ctx.schedule_activity("inc", x)
    x = yield ctx.schedule_activity("inc", x)
    x = yield ctx.schedule_activity("inc", x)
    return x


@rt.register_orchestration("block_b")
def block_b(ctx, x):
    x = yield ctx.schedule_activity("inc", x)
    yield ctx.schedule_timer(60_000)
    x = yield ctx.schedule_activity("inc", x)
    return x


@rt.register_orchestration("blockrace")
def blockrace(ctx, x):
    w = yield ctx.race(
        ctx.schedule_sub_orchestration("block_a", x),
        ctx.schedule_sub_orchestration("block_b", x),
    )
    return w["value"] if w["index"] == 0 else {"b_won": w["value"]}


rt.start()
client = Client(prov)
ids = [f"blockrace-{i}" for i in range(a.n)]
t0 = time.perf_counter()
for i, iid in enumerate(ids):
    client.start_orchestration(iid, "blockrace", i)
t_started = time.perf_counter()
bad = 0
for i, iid in enumerate(ids):
    st = client.wait_for_orchestration(iid, 600_000)
    if st.status != "Completed" or st.output != i + 3:
        bad += 1
        print("BAD", iid, st.status, st.output, st.error, file=sys.stderr)
t1 = time.perf_counter()

# ---- untimed: let the losers' cancellations settle, then count what the run left behind ----------
deadline = time.time() + 30
while client.get_system_metrics().running_instances > 0 and time.time() < deadline:
    time.sleep(0.1)
m = client.get_system_metrics()
losers_cancelled = failed_other = 0
for iid in client.list_instances_by_status("Failed"):
    info = client.get_instance_info(iid)
    if info.orchestration_name == "block_b" and "canceled" in (info.output or ""):
        losers_cancelled += 1
    else:
        failed_other += 1
        print("FAILED", iid, info.orchestration_name, info.output, file=sys.stderr)
rt.shutdown(2000)
shutil.rmtree(tmp, ignore_errors=True)
wall = t1 - t0
print(
    json.dumps(
        {
            "peer": "duroxide",
            "workload": "blockrace",
            "n": a.n,
            "storage": "sqlite-mem" if a.mem else "sqlite-file",
            "oc": a.oc,
            "wc": a.wc,
            "poll_ms": a.poll_ms,
            "wall_s": round(wall, 4),
            "start_phase_s": round(t_started - t0, 4),
            "orch_per_s": round(a.n / wall, 2),
            "instances": m.total_instances,
            "history_events": m.total_events,
            "losers_cancelled": losers_cancelled,
            "failed_other_instances": failed_other,
            "still_running_after_settle": m.running_instances,
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": bad,
        }
    )
)
