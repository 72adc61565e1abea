"""Plot soak runs: RSS, backlog and dead rows against time, one PNG.

Usage: python plot_soak.py OUT.png LABEL=soak.jsonl [LABEL=soak.jsonl ...]

Each input is the JSON lines ``bench/soak.py`` prints (its per-interval
samples; other lines are skipped). Needs matplotlib, which perdure does
not depend on: ``pip install matplotlib``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def samples(path: Path) -> list[dict[str, Any]]:
    """The per-interval samples of one soak output."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "t_s" in row:
            rows.append(row)
    return rows


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, runs = Path(sys.argv[1]), [arg.split("=", 1) for arg in sys.argv[2:]]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    rss, backlog, dead = axes
    for index, (label, path) in enumerate(runs):
        rows = samples(Path(path))
        style = {"marker": "o", "label": label, "color": f"C{index}"}
        t = [r["t_s"] for r in rows]
        rss.plot(t, [r["rss_mb"] for r in rows], **style)
        backlog.plot(t, [r["backlog"] for r in rows], **style)
        if any(r.get("dead_rows") is not None for r in rows):
            dead.plot(t, [r.get("dead_rows") or 0 for r in rows], **style)
    rss.set_ylabel("RSS (MB)")
    rss.set_ylim(bottom=0)
    backlog.set_ylabel("backlog (instances)")
    dead.set_ylabel("dead queue rows")
    dead.set_xlabel("seconds")
    rss.set_title("bench/soak.py: 300 starts/s (chain, race, block race)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
