#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
"""Workload A ("chain") on DBOS Transact with a file-based SQLite system database:
N workflows, each calling 3 @DBOS.step()s sequentially.

Usage: python dbos_chain.py N [--queue-conc K] [--queue-poll-sec S]
  default: DBOS.start_workflow() for each (runs at once on DBOS's executor thread pool)
  --queue-conc K: enqueue on a DBOS queue with worker_concurrency=K instead
Prints one JSON line. Wall time = first start -> last result.
"""

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time

from dbos import DBOS, DBOSConfig

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("--queue-conc", type=int, default=None)
ap.add_argument("--queue-poll-sec", type=float, default=0.05)
ap.add_argument(
    "--poll-sec",
    type=float,
    default=None,
    help="notification_listener_polling_interval_sec (DBOS default 1.0)",
)
a = ap.parse_args()

tmp = tempfile.mkdtemp(prefix="dbos-chain-")
cfg: DBOSConfig = {
    "name": "bench",
    "system_database_url": f"sqlite:///{tmp}/dbos.sqlite",
    "log_level": "WARNING",
}
if a.poll_sec is not None:
    cfg["notification_listener_polling_interval_sec"] = a.poll_sec
DBOS(config=cfg)


@DBOS.step()
def inc(x):
    return x + 1


@DBOS.workflow()
def chain(x):
    x = inc(x)
    x = inc(x)
    x = inc(x)
    return x


DBOS.launch()
q = None
if a.queue_conc:
    q = DBOS.register_queue(
        "benchq", worker_concurrency=a.queue_conc, polling_interval_sec=a.queue_poll_sec
    )
t0 = time.perf_counter()
if q is None:
    handles = [DBOS.start_workflow(chain, i) for i in range(a.n)]
else:
    handles = [q.enqueue(chain, i) for i in range(a.n)]
t_started = time.perf_counter()
bad = 0
for i, h in enumerate(handles):
    kw = {} if q is None else {"polling_interval_sec": a.queue_poll_sec}
    r = h.get_result(**kw)
    if r != i + 3:
        bad += 1
        print("BAD", h.workflow_id, r, file=sys.stderr)
t1 = time.perf_counter()
DBOS.destroy()
shutil.rmtree(tmp, ignore_errors=True)
wall = t1 - t0
print(
    json.dumps(
        {
            "peer": "dbos",
            "workload": "chain",
            "n": a.n,
            "storage": "sqlite-file",
            "mode": "start_workflow"
            if q is None
            else f"queue(worker_concurrency={a.queue_conc})",
            "wall_s": round(wall, 4),
            "start_phase_s": round(t_started - t0, 4),
            "orch_per_s": round(a.n / wall, 2),
            "acts_per_s": round(3 * a.n / wall, 2),
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": bad,
        }
    )
)
