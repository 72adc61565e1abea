"""Instructions per unit of work, counted by callgrind: a noise-free A/B.

Wall time on a shared 2-core machine moves ±15 % from run to run;
instruction counts repeat to well under 1 %. For each workload this runs its
``bench/perdure_<workload>.py`` under ``valgrind --tool=callgrind`` at two
sizes and reports ``(instructions(large) - instructions(small)) / (large -
small)``: the cost of one more unit (instance, or activity for fanout and
longhistory), with start-up cancelled out. ``--src`` runs another checkout's
engine (e.g. a ``git worktree`` of an older commit) with the same scripts.

Usage:
  python bench/instructions.py [--workloads chain,race] [--small 200]
                               [--large 600] [--src PATH/src]
                               [--args "--url postgresql://..."]

Prints one JSON line per workload. Needs valgrind (Debian package).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = ("chain", "fanout", "race", "longhistory", "blockrace")


def count(workload: str, n: int, src: str | None, extra: list[str]) -> int:
    """Instructions (all threads) of one run of *workload* at size *n*."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=no",
                f"--callgrind-out-file={out}/cg.%p",
                sys.executable,
                str(HERE / f"perdure_{workload}.py"),
                str(n),
                *extra,
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        total = 0
        for path in glob.glob(f"{out}/cg.*"):
            for line in Path(path).read_text().splitlines():
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=600)
    parser.add_argument("--src", default=None, help="engine to import (PYTHONPATH)")
    parser.add_argument(
        "--args",
        default="",
        help="more arguments for the workload script, e.g. '--url postgresql://...'"
        " (PostgreSQL: the server's instructions are not counted)",
    )
    args = parser.parse_args()
    for workload in args.workloads.split(","):
        extra = args.args.split()
        small = count(workload, args.small, args.src, extra)
        large = count(workload, args.large, args.src, extra)
        per_unit = (large - small) / (args.large - args.small)
        print(
            json.dumps(
                {
                    "workload": workload,
                    "src": args.src or "installed",
                    "args": args.args,
                    "small": args.small,
                    "large": args.large,
                    "instructions_small": small,
                    "instructions_large": large,
                    "per_unit": round(per_unit),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
