"""Benchmark perdure against its peers, alternating runs on the same machine.

For every workload and every chosen peer it runs ``perdure, peer, perdure,
peer, ...`` (``--repeat`` pairs, same size), each script under
``/usr/bin/time -v`` in its own process, keeps the median-wall run of each
side and prints the speed-up (peer median wall / perdure median wall: for the
throughput workloads that is the ratio of orchestrations/s, for fanout and
longhistory the ratio of times).

Usage:
  python bench/run.py                                  # all peers, all workloads
  python bench/run.py --peers duroxide --workloads chain,race --repeat 5
  python bench/run.py --peers none                     # perdure alone, target sizes
  python bench/run.py --scale                          # + memory/scale figures
  python bench/run.py ... --out runs.jsonl --markdown bench/RESULTS.md
  python bench/run.py --table runs.jsonl --markdown bench/RESULTS.md

Peers live in ``--venvs`` (default /tmp/peers/venv-<peer>, see
bench/README.md). ``--markdown`` rewrites the part of the file between the
``<!-- run.py:NAME:begin -->`` / ``<!-- run.py:NAME:end -->`` markers
(``--block NAME``, default ``main``), or creates the file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_DIR = os.path.join(HERE, "peers")
WORKLOADS = ("chain", "fanout", "race", "longhistory", "blockrace")
PEERS = ("duroxide", "dbos", "temporal")
# The anchor configuration of each peer (shared/bench-peers/README.md, the
# bold rows): size and extra script arguments. perdure runs the same size.
PEER_ARGS: dict[str, dict[str, list[str]]] = {
    "duroxide": {
        "chain": ["1000"],
        "fanout": ["1000"],
        "race": ["1000"],
        "longhistory": ["1000", "--poll-ms", "1"],
        "blockrace": ["300"],
    },
    "dbos": {
        "chain": ["1000"],
        "fanout": ["1000"],
        "race": ["500"],
        "longhistory": ["1000"],
        "blockrace": ["300"],
    },
    "temporal": {
        "chain": ["300"],
        "fanout": ["1000"],
        "race": ["300"],
        "longhistory": ["1000"],
        "blockrace": ["300"],
    },
}
# Quiet-machine medians of those configurations (2026-11-24 anchors, wall s):
# the conservative comparison when the run itself was made under load.
ANCHOR_WALL = {
    ("duroxide", "chain"): 13.79,
    ("duroxide", "fanout"): 7.37,
    ("duroxide", "race"): 6.93,
    ("duroxide", "longhistory"): 24.86,
    ("duroxide", "blockrace"): 5.71,
    ("dbos", "chain"): 18.66,
    ("dbos", "fanout"): 12.67,
    ("dbos", "race"): 15.87,
    ("dbos", "longhistory"): 2.02,
    ("dbos", "blockrace"): 17.52,
    ("temporal", "chain"): 20.22,
    ("temporal", "fanout"): 5.38,
    ("temporal", "race"): 14.11,
    ("temporal", "longhistory"): 49.15,
    ("temporal", "blockrace"): 22.14,
}
# perdure alone (--peers none): the sizes of the targets in bench/README.md.
TARGET_SIZES = {
    "chain": 1000,
    "fanout": 1000,
    "race": 1000,
    "longhistory": 1000,
    "blockrace": 1000,
}


def one_run(python: str, script: str, args: list[str], timeout: float) -> dict:
    """Run one script under GNU time; return its JSON line plus RSS/time."""
    cmd = ["/usr/bin/time", "-v", python, script, *args]
    load = os.getloadavg()[0]
    t = time.time()
    p = subprocess.run(
        cmd, cwd=os.path.dirname(script), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    res: dict[str, Any] | None = None
    for line in reversed(p.stdout.splitlines()):
        if line.strip().startswith("{"):
            try:
                res = json.loads(line)
                break
            except ValueError:
                pass
    if res is None:
        tail = "\n".join(p.stderr.splitlines()[-30:])
        raise RuntimeError(f"no JSON result (rc={p.returncode}) from {cmd}\n{tail}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    res["time_max_rss_kb"] = int(m.group(1)) if m else None
    res["process_s"] = round(time.time() - t, 2)
    res["rc"] = p.returncode
    # Other jobs on the machine skew everything: keep the 1-min load average
    # (at the start, and the max of start/end) with each run.
    res["loadavg"] = round(max(load, os.getloadavg()[0]), 2)
    res["git"] = git_rev()
    res["cmd"] = " ".join([os.path.basename(script), *args])
    return res


def safe_run(python: str, script: str, args: list[str], timeout: float) -> dict | None:
    """`one_run`, but a failed run is logged and skipped, not fatal."""
    try:
        return one_run(python, script, args, timeout)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        log(f"FAILED {os.path.basename(script)} {args}: {exc}")
        return None


def perdure_cmd(workload: str, size: str, opts: list[str]) -> tuple[str, list[str]]:
    return os.path.join(HERE, f"perdure_{workload}.py"), [size, *opts]


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall (lower median), annotated with all walls."""
    med = statistics.median_low([r["wall_s"] for r in runs])
    rec = dict(next(r for r in runs if r["wall_s"] == med))
    rec["walls"] = [r["wall_s"] for r in runs]
    rec["errors_all_runs"] = sum(r.get("errors") or 0 for r in runs)
    rec["time_max_rss_kb_max"] = max(r.get("time_max_rss_kb") or 0 for r in runs)
    return rec


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_matrix(a: argparse.Namespace) -> list[dict]:
    """Run everything requested; return flat run records (side, pair, ...)."""
    out: list[dict] = []
    opts = a.perdure_opts.split() if a.perdure_opts else []

    def record(rec: dict | None, **tags: Any) -> None:
        if rec is None:
            return  # the run failed; logged by safe_run
        rec.update(tags)
        out.append(rec)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(rec) + "\n")

    for workload in a.workloads:
        for peer in a.peers:
            if peer == "none":
                size = str(TARGET_SIZES[workload])
                peer_args: list[str] = []
            else:
                peer_args = PEER_ARGS[peer][workload]
                size = peer_args[0]
            py = os.path.join(a.venvs, f"venv-{peer}", "bin", "python")
            for i in range(a.repeat):
                script, args = perdure_cmd(workload, size, opts)
                r = safe_run(sys.executable, script, args, a.timeout)
                log(f"{workload} vs {peer} #{i + 1}: perdure {r and r['wall_s']} s")
                record(r, side="perdure", pair=peer, workload=workload)
                if peer == "none":
                    continue
                script = os.path.join(PEER_DIR, f"{peer}_{workload}.py")
                r = safe_run(py, script, peer_args, a.timeout)
                log(f"{workload} vs {peer} #{i + 1}: {peer} {r and r['wall_s']} s")
                record(r, side="peer", pair=peer, workload=workload)
    if a.scale:
        for args in (["10000"], ["10000", "--cache", "1000"]):
            script = os.path.join(HERE, "perdure_scale.py")
            r = safe_run(sys.executable, script, args, a.timeout)
            log(f"scale {args}: {r}")
            record(r, side="perdure", pair="scale", workload="timers")
        script, args = perdure_cmd("longhistory", "10000", opts)
        r = safe_run(sys.executable, script, args, a.timeout)
        log(f"longhistory 10000: {r and r['wall_s']} s")
        record(r, side="perdure", pair="scale", workload="longhistory")
    return out


def rate(r: dict) -> str:
    w = r["workload"]
    if w in ("chain", "race", "blockrace"):
        return f"{r['orch_per_s']:,.0f} orch/s"
    if w == "fanout":
        return f"{r['wall_s']:.3f} s"
    if w == "longhistory":
        grow = f"{r['ms_per_act_first10pct']} → {r['ms_per_act_last10pct']}"
        return f"{r['ms_per_act']} ms/act ({grow})"
    return ""


def rss_mb(r: dict) -> str:
    if r.get("server_peak_rss_kb"):
        return (
            f"{r['self_peak_rss_kb'] / 1024:.0f} + "
            f"{r['server_peak_rss_kb'] / 1024:.0f} server"
        )
    kb = r.get("time_max_rss_kb_max") or r.get("time_max_rss_kb") or 0
    return f"{kb / 1024:.0f}"


def summarise(runs: list[dict]) -> list[tuple[dict, dict | None]]:
    """Median perdure and peer record per (workload, pair), in run order."""
    keys: list[tuple[str, str]] = []
    for r in runs:
        key = (r["workload"], r["pair"])
        if key not in keys and r["pair"] != "scale":
            keys.append(key)
    rows = []
    for workload, pair in keys:
        mine = [r for r in runs if (r["workload"], r["pair"]) == (workload, pair)]
        ours_runs = [r for r in mine if r["side"] == "perdure"]
        if not ours_runs:
            continue
        ours = median_run(ours_runs)
        theirs = [r for r in mine if r["side"] == "peer"]
        rows.append((ours, median_run(theirs) if theirs else None))
    return rows


def git_rev() -> str:
    """The perdure checkout's revision (``-dirty`` if edited) at run time."""
    return subprocess.run(
        ["git", "-C", HERE, "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    ).stdout.strip() or "?"  # fmt: skip


def machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sqlite3, sys, perdure; print(sys.version.split()[0],"
         " sqlite3.sqlite_version, perdure.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"nproc {os.cpu_count()}, CPU {cpu}, {mem:.0f} GiB RAM, "
        f"Linux {os.uname().release}, CPython {probe[0]}, sqlite {probe[1]}, "
        f"perdure {probe[2]}"
    )


def table(runs: list[dict]) -> str:
    lines = [
        "| workload | size | perdure median (runs, s) | perdure | perdure RSS MB"
        " | peer | peer median (runs, s) | peer | peer RSS MB | speed-up"
        " | vs quiet anchor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ours, theirs in summarise(runs):
        size = ours.get("n", ours.get("m"))
        walls = ", ".join(f"{w:.3f}" for w in ours["walls"])
        errs = f" ⚠ {ours['errors_all_runs']} errors" if ours["errors_all_runs"] else ""
        row = (
            f"| {ours['workload']} | {size} | **{ours['wall_s']:.3f}** ({walls})"
            f"{errs} | {rate(ours)} | {rss_mb(ours)} |"
        )
        if theirs is None:
            lines.append(row + " — | | | | | |")
            continue
        twalls = ", ".join(f"{w:.2f}" for w in theirs["walls"])
        terrs = ""
        if theirs["errors_all_runs"]:
            terrs = f" ({theirs['errors_all_runs']} errors)"
        label = theirs["cmd"].split(".py", 1)
        quiet = ANCHOR_WALL.get((ours["pair"], ours["workload"]))
        anchor = f"{quiet / ours['wall_s']:.1f}x ({quiet} s)" if quiet else ""
        lines.append(
            f"{row} {ours['pair']} `{label[0]}{label[1]}` | {theirs['wall_s']:.2f}"
            f" ({twalls}){terrs} | {rate(theirs)} | {rss_mb(theirs)} |"
            f" **{theirs['wall_s'] / ours['wall_s']:.1f}x** | {anchor} |"
        )
    scale = [r for r in runs if r["pair"] == "scale"]
    if scale:
        lines += ["", "| scale figure | result |", "|---|---|"]
        for r in scale:
            if r["workload"] == "timers":
                lines.append(
                    f"| {r['n']:,} instances waiting on timers, cache {r['cache']:,}"
                    f" | RSS {r['rss_waiting_kb'] / 1024:.0f} MB while waiting"
                    f" (peak {r['time_max_rss_kb'] / 1024:.0f} MB; baseline"
                    f" {r['rss_baseline_kb'] / 1024:.0f} MB); all {r['waiting']:,}"
                    f" waiting after {r['wall_s']:.2f} s |"
                )
            else:
                lines.append(
                    f"| history of {r['m']:,} activities ({r['history_events']:,}"
                    f" events), one instance | {r['wall_s']:.2f} s, {rate(r)},"
                    f" peak RSS {r['time_max_rss_kb'] / 1024:.0f} MB |"
                )
    return "\n".join(lines)


def write_markdown(path: str, runs: list[dict], block_name: str) -> None:
    begin = f"<!-- run.py:{block_name}:begin -->"
    end = f"<!-- run.py:{block_name}:end -->"
    when = time.strftime("%Y-%m-%d %H:%M")
    loads = sorted(r.get("loadavg", 0.0) for r in runs)
    load = (
        f" 1-min load average during the runs: median {statistics.median(loads):.1f},"
        f" max {loads[-1]:.1f} (nproc {os.cpu_count()})."
        if loads
        else ""
    )
    block = (
        f"{begin}\nGenerated by `python bench/run.py {' '.join(sys.argv[1:])}`"
        f" at {when}.\nMachine: {machine()}.{load}\n\n{table(runs)}\n{end}"
    )
    revs = sorted({r["git"] for r in runs if r.get("git")})
    if revs:
        load += f" perdure git revision(s) of the runs: {', '.join(revs)}."
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = f"# perdure benchmark results\n\n{block}\n"
    with open(path, "w") as f:
        f.write(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", default="all", help="all, none or a,b,c")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--venvs", default="/tmp/peers")
    ap.add_argument("--perdure-opts", default="", help="extra perdure script args")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--scale", action="store_true", help="also memory/scale runs")
    ap.add_argument("--out", help="append every run as a JSON line")
    ap.add_argument("--markdown", help="write the table into this markdown file")
    ap.add_argument("--block", default="main", help="marker name in --markdown")
    ap.add_argument("--table", help="only render the table of an --out file")
    a = ap.parse_args()
    a.peers = list(PEERS) if a.peers == "all" else a.peers.split(",")
    a.workloads = a.workloads.split(",") if a.workloads else []
    if a.table:
        with open(a.table) as f:
            runs = [json.loads(line) for line in f if line.strip()]
    else:
        runs = run_matrix(a)
    print(table(runs))
    if a.markdown:
        write_markdown(a.markdown, runs, a.block)


if __name__ == "__main__":
    main()
