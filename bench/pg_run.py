"""perdure on PostgreSQL with 1, 2, 3 runtimes against DBOS, same run, one command.

Issue 17's figures: chain (N instances x 3 activities, started one by one by
one client) and long (one instance, M sequential activities), each with
``--procs`` runtime processes (`pg_chain.py`), and DBOS 3.4 on the same
server (`peers/dbos_chain_pg.py`, `peers/dbos_long_pg.py`) beside them. The
runs alternate within each round (DBOS, perdure x1, x2, x3, then the next
round), so a machine that slows down mid-way slows every side alike; the
table gives each side's median and range, the ratio of medians, and commits
per activity (``pg_stat_database.xact_commit``: the figure that does not
depend on the machine).

Usage:
  python bench/pg_run.py [--rounds 5] [--procs 1,3] [--workloads chain,long]
                         [--n 1000] [--url postgresql://.../bench]
                         [--dbos-url postgresql://.../dbos_bench_sys]
                         [--venvs /tmp/peers] [--out runs.jsonl]

DBOS runs from ``--venvs``/venv-dbos (see bench/README.md; skipped with a
note when that venv is missing). Every run prints its JSON line to
``--out`` (default: stderr only); the summary table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench"
DEFAULT_DBOS_URL = "postgresql://postgres@127.0.0.1:5432/dbos_bench_sys"


def run(cmd: list[str], timeout: float) -> dict[str, Any] | None:
    """The last JSON line *cmd* prints, or None (failed, no JSON)."""
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        print(f"timed out: {' '.join(cmd)}", file=sys.stderr)
        return None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    print(f"no result from {' '.join(cmd)}:\n{done.stderr[-2000:]}", file=sys.stderr)
    return None


def rate(row: dict[str, Any]) -> float:
    """Orchestrations/s (chain) or ms/step (long) of one run."""
    if row["workload"] == "chain":
        return float(row["orch_per_s"])
    return float(row.get("ms_per_step") or row["ms_per_act"])


def commits(row: dict[str, Any]) -> float | None:
    """Commits per activity (chain) or per step (long), if measured."""
    value = row.get("commits_per_activity", row.get("commits_per_step"))
    return None if value is None else float(value)


def side(row: dict[str, Any]) -> str:
    """'dbos' or 'perdure xK'."""
    return "dbos" if row["peer"] == "dbos" else f"perdure x{row['procs']}"


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table: median and range per workload and side, ratios."""
    out = [
        "| workload | side | median | runs | vs DBOS | commits/activity |",
        "|---|---|---|---|---|---|",
    ]
    for workload in ("chain", "long"):
        mine = [r for r in rows if (r["workload"] == "chain") == (workload == "chain")]
        sides = sorted({side(r) for r in mine}, key=lambda s: (s != "dbos", s))
        dbos = [rate(r) for r in mine if side(r) == "dbos"]
        for name in sides:
            values = [rate(r) for r in mine if side(r) == name]
            median = statistics.median(values)
            unit = "orch/s" if workload == "chain" else "ms/step"
            ratio = ""
            if dbos and name != "dbos":
                base = statistics.median(dbos)
                ratio = f"{median / base:.2f}x"
            spread = ", ".join(f"{v:g}" for v in values)
            cs = [c for c in (commits(r) for r in mine if side(r) == name) if c]
            per = f"{min(cs):.2f}-{max(cs):.2f}" if cs else ""
            cells = [workload, name, f"{median:g} {unit}", spread, ratio, per]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--procs", default="1,2,3", help="runtime counts, e.g. 1,3")
    ap.add_argument("--workloads", default="chain,long")
    ap.add_argument("--n", type=int, default=1000, help="instances / steps")
    ap.add_argument("--url", default=os.environ.get("PERDURE_DB", DEFAULT_URL))
    ap.add_argument("--dbos-url", default=DEFAULT_DBOS_URL)
    ap.add_argument("--venvs", default="/tmp/peers")
    ap.add_argument("--out", help="append every run's JSON line to this file")
    ap.add_argument("--table", metavar="JSONL", help="only print the table of a file")
    a = ap.parse_args()
    if a.table:
        with open(a.table) as f:
            print(table([json.loads(line) for line in f if line.strip()]))
        return
    dbos_py = os.path.join(a.venvs, "venv-dbos", "bin", "python")
    if not os.path.exists(dbos_py):
        print(f"no DBOS at {dbos_py}: perdure only", file=sys.stderr)
        dbos_py = ""
    procs = [int(p) for p in a.procs.split(",")]
    rows: list[dict[str, Any]] = []
    for r in range(a.rounds):
        for workload in a.workloads.split(","):
            cmds: list[list[str]] = []
            if dbos_py:
                peer = "dbos_chain_pg.py" if workload == "chain" else "dbos_long_pg.py"
                script = os.path.join(HERE, "peers", peer)
                cmds.append([dbos_py, script, str(a.n), "--url", a.dbos_url])
            for k in procs:
                cmd = [sys.executable, os.path.join(HERE, "pg_chain.py"), str(a.n)]
                cmd += ["--procs", str(k), "--url", a.url]
                cmds.append(cmd + (["--long"] if workload == "long" else []))
            for cmd in cmds:
                row = run(cmd, timeout=600)
                if row is None:
                    continue
                row["round"] = r
                rows.append(row)
                note = f"round {r} {workload} {side(row)}: {rate(row):g}"
                print(note, file=sys.stderr)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
