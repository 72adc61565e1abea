"""Shared plumbing of the perdure bench scripts (argument parsing, output).

Every perdure script prints one JSON line with the same keys the peer
scripts in ``bench/peers`` print (``peer``, ``workload``, ``n``/``m``,
``storage``, ``wall_s``, the workload's rate, ``self_peak_rss_kb``,
``errors``) plus the Runtime options it used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import perdure

# Defaults chosen for one process on 2 cores (see README.md): large batches
# so a fetch/commit round trip serves many instances, and a short idle poll
# (in-process work wakes the loops directly, so the poll only matters for
# timers and cross-process work).
DEFAULT_OC = 100
DEFAULT_AC = 100
DEFAULT_POLL = 1.0


def parser(doc: str | None, size_name: str = "n", size: int = 1000) -> Any:
    """Argument parser with the size and the Runtime options."""
    ap = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    ap.add_argument(size_name, type=int, nargs="?", default=size)
    ap.add_argument("--mem", action="store_true", help="sqlite://:memory:")
    ap.add_argument(
        "--url",
        help="a postgresql:// URL: run on a fresh schema there (dropped after)",
    )
    ap.add_argument(
        "--durability",
        choices=("power-loss", "process-crash"),
        default="power-loss",
        help="SQLite durability (default: the provider's, power-loss)",
    )
    ap.add_argument("--oc", type=int, default=DEFAULT_OC, help="orch. concurrency")
    ap.add_argument("--ac", type=int, default=DEFAULT_AC, help="activity concurrency")
    ap.add_argument("--poll", type=float, default=DEFAULT_POLL, help="poll_interval s")
    ap.add_argument("--cache", type=int, default=10_000, help="instance_cache_size")
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile .prof file")
    ap.add_argument(
        "--async-acts",
        action="store_true",
        help="async def activities (run on the loop) instead of def (thread pool)",
    )
    return ap


@perdure.activity(name="inc")
def inc_sync(ctx: perdure.ActivityContext, x: int) -> int:
    """The workloads' activity, x + 1, as a plain def (runs in a thread)."""
    return x + 1


@perdure.activity(name="inc")
async def inc_async(ctx: perdure.ActivityContext, x: int) -> int:
    """The same activity as an async def (runs on the event loop)."""
    return x + 1


def inc(args: Any) -> Any:
    """The ``inc`` activity the command line asks for (``--async-acts``)."""
    return inc_async if args.async_acts else inc_sync


@contextmanager
def storage(args: Any, prefix: str) -> Iterator[str]:
    """Yield a storage URL on a fresh temporary file, deleted afterwards."""
    if args.mem:
        yield "sqlite://:memory:"
        return
    if getattr(args, "url", None):
        schema = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in args.url else "?"
        try:
            yield f"{args.url}{sep}schema={schema}"
        finally:
            _drop(args.url, schema)
        return
    tmp = tempfile.mkdtemp(prefix=f"perdure-{prefix}-")
    try:
        url = "sqlite:///" + os.path.join(tmp, "perdure.db")
        if getattr(args, "durability", "power-loss") != "power-loss":
            url += f"?durability={args.durability}"
        yield url
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def runtime(url: str, args: Any, **kwargs: Any) -> perdure.Runtime:
    """A Runtime on *url* with the options given on the command line."""
    return perdure.Runtime(
        url,
        orchestration_concurrency=args.oc,
        activity_concurrency=args.ac,
        poll_interval=args.poll,
        instance_cache_size=args.cache,
        **kwargs,
    )


def options(args: Any) -> dict[str, Any]:
    """The storage and Runtime options, as JSON fields."""
    return {
        "storage": (
            "postgres"
            if getattr(args, "url", None)
            else "sqlite-mem"
            if args.mem
            else "sqlite-file"
        ),
        "durability": getattr(args, "durability", "power-loss"),
        "oc": args.oc,
        "ac": args.ac,
        "poll_s": args.poll,
        "cache": args.cache,
        "activities": "async" if getattr(args, "async_acts", False) else "sync",
    }


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB (Linux ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def current_rss_kb() -> int:
    """This process's current resident set size in KiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def emit(record: dict[str, Any]) -> None:
    """Print the one JSON result line."""
    record.setdefault("self_peak_rss_kb", peak_rss_kb())
    print(json.dumps(record), flush=True)


class Profiler:
    """Optional cProfile around the timed window (``--profile FILE``)."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._prof: Any = None

    def __enter__(self) -> Profiler:
        if self._path:
            import cProfile

            self._prof = cProfile.Profile()
            self._prof.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._prof is not None:
            self._prof.disable()
            self._prof.dump_stats(self._path)


def now() -> float:
    """Monotonic high-resolution clock used for every wall time."""
    return time.perf_counter()
