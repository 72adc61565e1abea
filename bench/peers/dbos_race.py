#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501
"""Workload C ("race") on DBOS Transact (SQLite system DB): N workflows, each races a trivial step
against a 60 s durable timeout and returns the winner.

DBOS has no select over arbitrary durable futures; the idiom used here: the parent starts a child
workflow that runs the step and DBOS.send()s the result to the parent; the parent waits with
DBOS.recv(topic, timeout_seconds=60) (a durable wait with a durable timeout). The message wins.
(Tried and dropped: DBOS.wait_first([child(step), child(DBOS.sleep(60))]) -- the losing sleep
workflow holds an executor thread in time.sleep() for the full 60 s, so the process cannot exit
before then, and cancelling it logs DBOSAwaitedWorkflowCancelledError tracebacks.)

Usage: python dbos_race.py N [--poll-sec S]
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
ap.add_argument(
    "--poll-sec",
    type=float,
    default=None,
    help="notification_listener_polling_interval_sec (DBOS default 1.0; SQLite has no LISTEN/NOTIFY)",
)
a = ap.parse_args()

tmp = tempfile.mkdtemp(prefix="dbos-race-")
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
def child(x, parent):
    DBOS.send(parent, inc(x), "done")


@DBOS.workflow()
def race(x):
    DBOS.start_workflow(child, x, DBOS.workflow_id)
    m = DBOS.recv("done", timeout_seconds=60)
    return "activity" if m is not None else "timer"


DBOS.launch()
t0 = time.perf_counter()
handles = [DBOS.start_workflow(race, i) for i in range(a.n)]
bad = 0
for h in handles:
    r = h.get_result()
    if r != "activity":
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
            "workload": "race",
            "n": a.n,
            "storage": "sqlite-file",
            "mode": "recv(timeout=60)",
            "poll_sec": a.poll_sec,
            "wall_s": round(wall, 4),
            "orch_per_s": round(a.n / wall, 2),
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": bad,
        }
    )
)
