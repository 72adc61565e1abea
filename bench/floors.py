"""What this machine allows a step to cost, below any engine: the floors.

Issue 17's latency targets depend on the machine (its disk's sync, how fast
an idle vCPU wakes, PostgreSQL's commit). This script measures those parts
alone, without perdure's engine, so that a benchmark row can be read
against what the hardware permits:

- ``fdatasync_ms``: 12 WAL-sized frames (1,048 bytes each) written, then
  ``fdatasync`` (a SQLite step writes ~10 such frames).
- ``sqlite_step_ms``: a transaction shaped like a sequential step's commit
  (an instance row updated, two history rows, a held activity deleted and
  the next inserted, perdure's indexes), WAL mode, 1 KiB pages, with
  ``synchronous=NORMAL`` (the process-crash mode) and ``FULL`` (the
  power-loss default), timed once the WAL is written in place.
- ``thread_hop_us``: an event loop hands a no-op to a worker thread and
  awaits it (``SimpleQueue`` + ``call_soon_threadsafe``, as perdure's
  activity threads), free and with the process confined to one CPU.
- with ``--url``: ``pg_commit_ms``, one autocommit single-row INSERT round
  trip (psycopg, synchronous_commit as configured).

Usage: python floors.py [--dir DIR] [--url URL] [--n N]
Prints one JSON line; every figure is a median (``_p90`` beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

_SCHEMA = """
CREATE TABLE instances (instance_id TEXT PRIMARY KEY, name TEXT, status TEXT,
  created_at REAL, updated_at REAL, history_len INTEGER, lock_token TEXT);
CREATE INDEX instances_by_created ON instances (created_at);
CREATE INDEX instances_by_status ON instances (status, created_at);
CREATE INDEX instances_by_name ON instances (name, created_at);
CREATE TABLE history (instance_id TEXT, execution_id INTEGER, event_id INTEGER,
  data TEXT, PRIMARY KEY (instance_id, execution_id, event_id)) WITHOUT ROWID;
CREATE TABLE activities (id INTEGER PRIMARY KEY, instance_id TEXT,
  execution_id INTEGER, event_id INTEGER, name TEXT, body TEXT,
  visible_at REAL, lock_token TEXT, priority INTEGER DEFAULT 0,
  UNIQUE (instance_id, execution_id, event_id));
CREATE INDEX activities_by_visible ON activities (visible_at);
CREATE INDEX activities_by_route ON activities (name, priority DESC, visible_at);
CREATE INDEX activities_leased ON activities (name, visible_at)
  WHERE lock_token IS NOT NULL;
"""


def _median(samples: list[float], scale: float) -> tuple[float, float]:
    samples = sorted(samples)
    p90 = samples[int(len(samples) * 0.9)]
    return round(statistics.median(samples) * scale, 4), round(p90 * scale, 4)


def fdatasync_ms(directory: str, n: int) -> tuple[float, float]:
    """12 frames appended in place over a preallocated file, then a sync."""
    fd, path = tempfile.mkstemp(dir=directory, prefix="floors-")
    try:
        os.write(fd, b"\0" * (4 << 20))
        os.fsync(fd)
        frame, offset, took = b"f" * 1048, 0, []
        for _ in range(n):
            for _ in range(12):
                os.pwrite(fd, frame, offset)
                offset = (offset + 1048) % (3 << 20)
            start = time.perf_counter()
            os.fdatasync(fd)
            took.append(time.perf_counter() - start)
        return _median(took, 1e3)
    finally:
        os.close(fd)
        os.unlink(path)


def sqlite_step_ms(directory: str, n: int, synchronous: str) -> tuple[float, float]:
    """One step-shaped transaction at a time, as the engine commits it."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        conn = sqlite3.connect(os.path.join(tmp, "floors.db"), isolation_level=None)
        try:
            conn.execute("PRAGMA page_size = 1024")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT INTO instances VALUES ('i', 'long', 'Running', 0, 0, 0, NULL)"
            )
            conn.execute(
                "INSERT INTO activities (instance_id, execution_id, event_id, name,"
                " body, visible_at, lock_token) VALUES ('i', 1, 0, 'inc', '{}', 0, 't')"
            )
            # Timed after the WAL's first checkpoint (10,000 frames, ~1,000
            # steps): from then on commits write the WAL in place, as the
            # engine's do (it keeps zeroes ahead of the WAL's end) instead
            # of growing the file, which makes every sync slower.
            data, took, warm = "x" * 150, [], 1100
            for k in range(1, warm + n + 1):
                start = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "UPDATE instances SET updated_at = ?, history_len = ?"
                    " WHERE instance_id = 'i'",
                    (time.time(), 2 * k),
                )
                conn.executemany(
                    "INSERT INTO history VALUES ('i', 1, ?, ?)",
                    [(2 * k - 1, data), (2 * k, data)],
                )
                conn.execute("DELETE FROM activities WHERE event_id = ?", (2 * k - 2,))
                conn.execute(
                    "INSERT INTO activities (instance_id, execution_id, event_id,"
                    " name, body, visible_at, lock_token)"
                    " VALUES ('i', 1, ?, 'inc', '{}', ?, 't')",
                    (2 * k, time.time() + 30),
                )
                conn.execute("COMMIT")
                if k > warm:
                    took.append(time.perf_counter() - start)
            return _median(took, 1e3)
        finally:
            conn.close()


def thread_hop_us(n: int) -> tuple[float, float]:
    """Loop -> worker thread -> loop, a no-op job, one at a time."""
    jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None]
    jobs = queue.SimpleQueue()

    def work() -> None:
        while (job := jobs.get()) is not None:
            fn, future = job
            result = fn()
            future.get_loop().call_soon_threadsafe(future.set_result, result)

    async def main() -> tuple[float, float]:
        loop, took = asyncio.get_running_loop(), []
        for _ in range(n):
            future = loop.create_future()
            start = time.perf_counter()
            jobs.put((lambda: None, future))
            await future
            took.append(time.perf_counter() - start)
        return _median(took, 1e6)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        return asyncio.run(main())
    finally:
        jobs.put(None)


def pinned_thread_hop_us(n: int) -> tuple[float, float] | None:
    """`thread_hop_us` in a child process confined to one CPU (Linux)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import os, json, sys; sys.path.insert(0, {here!r});"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]});"
        f"import floors; print(json.dumps(floors.thread_hop_us({n})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    median, p90 = json.loads(out)
    return median, p90


def pg_commit_ms(url: str, n: int) -> tuple[float, float]:
    """One autocommit single-row INSERT round trip, prepared.

    Into an ordinary table (a temporary one writes no WAL, so its commits
    wait for no flush), dropped afterwards.
    """
    import psycopg

    table = f"floors_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id bigint, at float8)")
        try:
            took = []
            for k in range(n):
                start = time.perf_counter()
                conn.execute(
                    f"INSERT INTO {table} VALUES (%s, %s)",
                    (k, time.time()),
                    prepare=True,
                )
                took.append(time.perf_counter() - start)
            return _median(took, 1e3)
        finally:
            conn.execute(f"DROP TABLE {table}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where files go")
    ap.add_argument("--url", help="a postgresql:// URL: also time its commits")
    ap.add_argument("--n", type=int, default=2000, help="samples per figure")
    args = ap.parse_args()
    out: dict[str, Any] = {"workload": "floors", "dir": args.dir}
    figures: dict[str, tuple[float, float] | None] = {
        "fdatasync_ms": fdatasync_ms(args.dir, args.n),
        "sqlite_step_normal_ms": sqlite_step_ms(args.dir, args.n, "NORMAL"),
        "sqlite_step_full_ms": sqlite_step_ms(args.dir, args.n, "FULL"),
        "thread_hop_us": thread_hop_us(args.n),
        "thread_hop_one_cpu_us": pinned_thread_hop_us(args.n),
    }
    if args.url:
        figures["pg_commit_ms"] = pg_commit_ms(args.url.split("?", 1)[0], args.n)
    for name, value in figures.items():
        if value is not None:
            out[name], out[f"{name}_p90"] = value
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
