#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501
"""Workload B ("fanout") on DBOS Transact (SQLite system DB): 1 workflow fans out N steps and joins.

Fan-out idiom (DBOS docs): inside the workflow, enqueue the step N times on a DBOS queue, then
get_result() each handle. Each enqueued step runs as its own child workflow.
  --mode start : use DBOS.start_workflow(step, i) instead of a queue (one executor thread each)

Usage: python dbos_fanout.py N [--mode queue|start] [--queue-conc K] [--queue-poll-sec S]
"""

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time

from dbos import DBOS

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("--mode", choices=["queue", "start"], default="queue")
ap.add_argument(
    "--queue-conc",
    type=int,
    default=None,
    help="queue worker_concurrency (default unlimited)",
)
ap.add_argument(
    "--queue-poll-sec",
    type=float,
    default=0.05,
    help="queue polling_interval_sec and handle get_result polling (DBOS default 1.0)",
)
a = ap.parse_args()

tmp = tempfile.mkdtemp(prefix="dbos-fanout-")
DBOS(
    config={
        "name": "bench",
        "system_database_url": f"sqlite:///{tmp}/dbos.sqlite",
        "log_level": "WARNING",
    }
)


@DBOS.step()
def inc(x):
    return x + 1


@DBOS.workflow()
def fanout(n):
    if a.mode == "queue":
        q = DBOS.retrieve_queue("fanq")
        hs = [q.enqueue(inc, i) for i in range(n)]
        return sum(h.get_result(polling_interval_sec=a.queue_poll_sec) for h in hs)
    hs = [DBOS.start_workflow(inc, i) for i in range(n)]
    return sum(h.get_result() for h in hs)


DBOS.launch()
DBOS.register_queue(
    "fanq", worker_concurrency=a.queue_conc, polling_interval_sec=a.queue_poll_sec
)
t0 = time.perf_counter()
r = DBOS.start_workflow(fanout, a.n).get_result()
t1 = time.perf_counter()
DBOS.destroy()
shutil.rmtree(tmp, ignore_errors=True)
wall = t1 - t0
ok = r == a.n * (a.n + 1) // 2
if not ok:
    print("BAD", r, file=sys.stderr)
print(
    json.dumps(
        {
            "peer": "dbos",
            "workload": "fanout",
            "n": a.n,
            "storage": "sqlite-file",
            "mode": a.mode
            if a.mode == "start"
            else f"queue(worker_concurrency={a.queue_conc}, poll={a.queue_poll_sec}s)",
            "wall_s": round(wall, 4),
            "acts_per_s": round(a.n / wall, 2),
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": 0 if ok else 1,
        }
    )
)
