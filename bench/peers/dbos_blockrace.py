#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501
"""Workload E ("blockrace") on DBOS Transact (SQLite system DB): N workflows, each races two
multi-step blocks and returns the winner's result:
  block A: inc, inc, inc                      -> x+3 (must win)
  block B: inc, 60 s durable wait, inc        -> must lose and be abandoned
DBOS has no in-workflow select/cancel over inline code, so each block is a child workflow started
with DBOS.start_workflow. Two ways to pick the winner (--mode):
  recv (default): each block DBOS.send()s [name, result] to the parent on topic "done"; the parent
                  takes the first message with DBOS.recv("done", timeout_seconds=120) (the dbos_race
                  idiom).
  wait_first:     the parent calls DBOS.wait_first([hA, hB]) (polls workflow status every
                  --wait-poll-sec) and then get_result() on the winner.
Cancelling the loser is cooperative: block B's 60 s timer is DBOS.recv("cancel", timeout_seconds=60)
(a durable wait with a durable deadline) and the parent DBOS.send()s "cancel" to the loser, which
then returns without its last step. DBOS.cancel_workflow() would only mark the loser CANCELLED:
a thread blocked in DBOS.sleep() (plain time.sleep) or DBOS.recv() is not interrupted, so the loser
would pin an executor thread for the full 60 s and the process could not exit before then.
Every blockrace is 3 workflows (parent + 2 children).

Usage: python dbos_blockrace.py N [--mode recv|wait_first] [--poll-sec S] [--wait-poll-sec S]
Prints one JSON line. Wall time = first start -> last result. After the timed window it waits
(<= 30 s, untimed) for the losers to finish and counts the ones that were cancelled.
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
ap.add_argument("n", type=int, nargs="?", default=300)
ap.add_argument("--mode", choices=["recv", "wait_first"], default="recv")
ap.add_argument(
    "--poll-sec",
    type=float,
    default=None,
    help="notification_listener_polling_interval_sec (DBOS default 1.0; SQLite has no LISTEN/NOTIFY)",
)
ap.add_argument(
    "--wait-poll-sec",
    type=float,
    default=None,
    help="wait_first polling_interval_sec (DBOS default 1.0)",
)
a = ap.parse_args()

tmp = tempfile.mkdtemp(prefix="dbos-blockrace-")
cfg: DBOSConfig = {
    "name": "bench",
    "system_database_url": f"sqlite:///{tmp}/dbos.sqlite",
    "log_level": "WARNING",
}
if a.poll_sec is not None:
    cfg["notification_listener_polling_interval_sec"] = a.poll_sec
DBOS(config=cfg)
WAIT_KW = {} if a.wait_poll_sec is None else {"polling_interval_sec": a.wait_poll_sec}
CANCELLED = "cancelled"


@DBOS.step()
def inc(x):
    return x + 1


@DBOS.workflow()
def block_a(x, parent):
    x = inc(x)
    x = inc(x)
    x = inc(x)
    if parent:
        DBOS.send(parent, ["A", x], "done")
    return x


@DBOS.workflow()
def block_b(x, parent):
    x = inc(x)
    # the 60 s durable timer, interruptible by the parent's "cancel" message
    if DBOS.recv("cancel", timeout_seconds=60) is not None:
        return CANCELLED  # lost the race: abandon the rest of the block
    x = inc(x)
    if parent:
        DBOS.send(parent, ["B", x], "done")
    return x


@DBOS.workflow()
def blockrace(x):
    parent = DBOS.workflow_id if a.mode == "recv" else None
    ha = DBOS.start_workflow(block_a, x, parent)
    hb = DBOS.start_workflow(block_b, x, parent)
    if a.mode == "recv":
        m = DBOS.recv("done", timeout_seconds=120)
        winner, value = m if m is not None else (None, None)
    else:
        h = DBOS.wait_first([ha, hb], **WAIT_KW)
        winner, value = ("A" if h is ha else "B"), h.get_result()
    if winner != "B":
        DBOS.send(hb.workflow_id, "cancel", "cancel")  # cooperative cancel of the loser
    return value if winner == "A" else {"winner": winner, "value": value}


DBOS.launch()
t0 = time.perf_counter()
handles = [DBOS.start_workflow(blockrace, i) for i in range(a.n)]
t_started = time.perf_counter()
bad = 0
for i, h in enumerate(handles):
    r = h.get_result()
    if r != i + 3:
        bad += 1
        print("BAD", h.workflow_id, r, file=sys.stderr)
t1 = time.perf_counter()

# ---- untimed: let the losers wake up and finish, then count them ----------------------------------
deadline = time.time() + 30
while (
    DBOS.list_workflows(
        name="block_b", status=["PENDING"], load_input=False, load_output=False
    )
    and time.time() < deadline
):
    time.sleep(0.1)
bs = DBOS.list_workflows(name="block_b", load_input=False)
losers_cancelled = sum(1 for w in bs if w.status == "SUCCESS" and w.output == CANCELLED)
workflows = len(DBOS.list_workflows(load_input=False, load_output=False))
DBOS.destroy()
shutil.rmtree(tmp, ignore_errors=True)
wall = t1 - t0
print(
    json.dumps(
        {
            "peer": "dbos",
            "workload": "blockrace",
            "n": a.n,
            "storage": "sqlite-file",
            "mode": a.mode,
            "poll_sec": a.poll_sec,
            "wait_poll_sec": a.wait_poll_sec,
            "wall_s": round(wall, 4),
            "start_phase_s": round(t_started - t0, 4),
            "orch_per_s": round(a.n / wall, 2),
            "workflows": workflows,
            "losers_cancelled": losers_cancelled,
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "errors": bad,
        }
    )
)
