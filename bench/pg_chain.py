"""Workload A ("chain") on PostgreSQL with K runtime processes.

Usage: python pg_chain.py N [--procs K] [--url URL] [--oc K] [--ac K]
                           [--start-tasks C | --prestart | --long] [--kept K]
                           [--leased K]

N orchestrations x 3 sequential activities (``x + 1``). K runtime
subprocesses (role "all") share one fresh schema; this process is only the
client: it starts the N instances one by one, then waits for each in order
(like ``perdure_chain.py`` and the peers). Wall time = first
``start_orchestration`` -> last completion seen. Prints one JSON line. The
URL comes from ``--url``, ``PERDURE_DB`` or ``PERDURE_TEST_POSTGRES_URL``;
the schema is dropped afterwards. ``--start-tasks C`` starts instances
from C concurrent callers (each start is a commit, so one-by-one starts
are bound by the database's fsync latency); ``--prestart`` creates them all
before the runtimes start and times only the runtimes' drain (from the
first runtime being up to the last completion). ``--long`` runs the long
workload instead: one instance of N sequential activities, timed from its
start to its completion (ms and commits per step). ``--kept K`` puts K
finished instances (two history events each) in the tables first, as a
deployment that keeps them would have. ``--leased K`` puts K activity
items held by other workers (long-running activities in flight elsewhere)
in the table for the whole run.

``cpu`` in the output: the client's CPU seconds over the timed phase and
each runtime process's from its start-up to its stop (what the work cost,
whatever the machine's other load; idle time costs next to nothing).
``PG_CHAIN_COUNT=1`` prints each runtime's provider calls by verb to
stderr; ``PG_CHAIN_PROFILE=PATH`` writes a CPU-time cProfile of each
runtime to ``PATH.<pid>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import time
import uuid
from typing import Any

import perdure
from perdure.providers._pg_schema import quote_ident
from perdure.providers.postgres import PostgresProvider


@perdure.activity(name="inc")
async def inc(ctx: perdure.ActivityContext, x: int) -> int:
    return x + 1


@perdure.orchestration(name="chain")
async def chain(ctx: perdure.OrchestrationContext, x: int) -> int:
    x = await ctx.schedule_activity("inc", x)
    x = await ctx.schedule_activity("inc", x)
    return await ctx.schedule_activity("inc", x)


@perdure.orchestration(name="long")
async def long(ctx: perdure.OrchestrationContext, m: int) -> int:
    x = 0
    for _ in range(m):
        x = await ctx.schedule_activity("inc", x)
    return x


async def serve(url: str, oc: int, ac: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with perdure.Runtime(
        url,
        orchestrations=[chain, long],
        activities=[inc],
        orchestration_concurrency=oc,
        activity_concurrency=ac,
    ) as rt:
        print("ready", flush=True)
        counts = _count_verbs(rt) if os.environ.get("PG_CHAIN_COUNT") else None
        cpu0 = _cpu()
        await stop.wait()
        if counts is not None:
            print(json.dumps(counts), file=sys.stderr, flush=True)
    # What this runtime's process spent from "ready" to its stop.
    print(json.dumps({"cpu_s": round(_cpu() - cpu0, 3)}), flush=True)


def _cpu() -> float:
    """CPU seconds (user + system) this process has used."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _count_verbs(rt: perdure.Runtime) -> dict[str, int]:
    """Count the runtime's provider calls by verb (PG_CHAIN_COUNT=1)."""
    counts: dict[str, int] = {}
    provider = rt._provider
    for verb in (
        "fetch_orchestrations",
        "commit_turns",
        "fetch_activities",
        "complete_activities",
        "renew_activity_leases",
        "abandon_orchestration",
        "wait",
    ):
        original = getattr(provider, verb, None)
        if original is None:
            continue

        async def counted(*a: object, _f: Any = original, _v: str = verb) -> Any:
            result = await _f(*a)
            key = _v
            if _v.startswith("fetch") and not result:
                key += ":empty"
            counts[key] = counts.get(key, 0) + 1
            return result

        setattr(provider, verb, counted)
    return counts


async def start_all(client: perdure.Client, n: int, tasks: int) -> None:
    """Start ``chain-0`` .. ``chain-{n-1}`` using *tasks* concurrent callers."""
    queue = iter(range(n))

    async def caller() -> None:
        for i in queue:
            await client.start_orchestration(f"chain-{i}", "chain", i)

    await asyncio.gather(*(caller() for _ in range(tasks)))


async def spawn(args: argparse.Namespace, url: str) -> list[asyncio.subprocess.Process]:
    return [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve",
            url,
            "--oc",
            str(args.oc),
            "--ac",
            str(args.ac),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(args.procs)
    ]


async def ready(procs: list[asyncio.subprocess.Process]) -> None:
    async def one(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"ready"

    await asyncio.wait(
        [asyncio.ensure_future(one(p)) for p in procs],
        return_when=asyncio.FIRST_COMPLETED,
    )


async def commits(url: str) -> int:
    """The database's ``xact_commit`` so far (every transaction, reads too)."""
    import psycopg

    plain = url.split("?", 1)[0]  # without the provider's own parameters
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT xact_commit FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


def count_calls(client: perdure.Client) -> dict[str, int]:
    """Count the client's storage calls (each one transaction) by verb."""
    calls: dict[str, int] = {}
    provider = client._provider
    assert provider is not None
    for verb in ("create_instance", "get_instance", "enqueue"):
        original = getattr(provider, verb)

        def counted(*a: object, _f: object = original, _v: str = verb) -> object:
            calls[_v] = calls.get(_v, 0) + 1
            return _f(*a)  # type: ignore[operator]

        setattr(provider, verb, counted)
    return calls


async def drive(args: argparse.Namespace, url: str) -> dict[str, object]:
    procs: list[asyncio.subprocess.Process] = []
    before = await commits(url)
    cpu: dict[str, object] = {}
    try:
        async with perdure.Client(url) as client:
            await client.get_status("none")  # opens the provider
            calls = count_calls(client)
            if args.prestart:
                await start_all(client, args.n, max(args.start_tasks, 20))
                procs = await spawn(args, url)
                await ready(procs)  # timing starts when the first one is up
                t0 = started = time.perf_counter()
                c0 = _cpu()
            else:
                procs = await spawn(args, url)
                for proc in procs:
                    await ready([proc])
                await asyncio.sleep(0.5)  # every runtime announced (homes)
                t0 = time.perf_counter()
                c0 = _cpu()
                if args.long:
                    await client.start_orchestration("long-0", "long", args.n)
                    state = await client.wait_for_orchestration("long-0", 600)
                    t1 = time.perf_counter()
                    cpu["client_cpu_s"] = round(_cpu() - c0, 3)
                    bad = int(state.output != args.n)
                    result = long_result(args, t1 - t0, bad, before, calls)
                    result["cpu"] = cpu  # the runtimes' are filled in below
                    return result
                await start_all(client, args.n, args.start_tasks)
                started = time.perf_counter()
            bad = 0
            for i in range(args.n):
                state = await client.wait_for_orchestration(f"chain-{i}", 600)
                if state.status != "Completed" or state.output != i + 3:
                    bad += 1
            t1 = time.perf_counter()
            cpu["client_cpu_s"] = round(_cpu() - c0, 3)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outs = await asyncio.gather(*(proc.communicate() for proc in procs))
        cpu["runtimes_cpu_s"] = [
            json.loads(out.splitlines()[-1])["cpu_s"] for out, _ in outs if out
        ]
    wall = t1 - t0
    total = await commits(url) - before - 1  # less this call's own
    mine = sum(calls.values())
    return {
        "peer": "perdure",
        "workload": "chain",
        "storage": "postgres",
        "n": args.n,
        "kept": args.kept,
        "leased": args.leased,
        "procs": args.procs,
        "starts": "before" if args.prestart else f"{args.start_tasks} callers",
        "oc": args.oc,
        "ac": args.ac,
        "wall_s": round(wall, 4),
        "start_phase_s": round(started - t0, 4),
        "orch_per_s": round(args.n / wall, 2),
        "acts_per_s": round(3 * args.n / wall, 2),
        "errors": bad,
        # Transactions per activity: all of them, and the runtimes' alone
        # (less the client's starts and status reads, one each).
        "commits_per_activity": round(total / (3 * args.n), 3),
        "runtime_commits_per_activity": round((total - mine) / (3 * args.n), 3),
        # CPU seconds: the client's over the timed phase; each runtime's
        # from its "ready" to its stop (idle time costs next to nothing).
        "cpu": cpu,
    }


def long_result(
    args: argparse.Namespace,
    wall: float,
    bad: int,
    before: int,
    calls: dict[str, int],
) -> dict[str, object]:
    """The JSON line of ``--long`` (commits are counted by the caller)."""
    return {
        "peer": "perdure",
        "workload": "long",
        "storage": "postgres",
        "m": args.n,
        "procs": args.procs,
        "wall_s": round(wall, 4),
        "ms_per_step": round(wall * 1000 / args.n, 3),
        "errors": bad,
        "commits_per_step": 0.0,  # filled in by drive's caller
        "before": before,
        "kept": args.kept,
        "leased": args.leased,
        "client_calls": sum(calls.values()),
    }


async def _instances(conn: Any, s: str, prefix: str, status: str, k: int) -> None:
    """Insert *k* instances ``<prefix>-1`` .. of status *status* in schema *s*."""
    await conn.execute(
        f"INSERT INTO {s}.instances (instance_id, name, version,"
        " execution_id, status, created_at, updated_at, history_len)"
        " SELECT %s || '-' || g, 'chain', '', 1, %s, g, g, 2"
        " FROM generate_series(1, %s) g",
        (prefix, status, k),
    )


async def keep_finished(provider: PostgresProvider, k: int) -> None:
    """Insert *k* finished instances with two history events each.

    As a deployment without ``retention`` keeps them; the table's size is
    what a step's statements must not depend on (RESULTS.md, tenth session).
    """
    s = quote_ident(provider.schema)
    async with provider._connection() as conn:
        await _instances(conn, s, "kept", "Completed", k)
        await conn.execute(
            f"INSERT INTO {s}.history (instance_id, execution_id, event_id, data)"
            " SELECT 'kept-' || g, 1, e, '{}'"
            " FROM generate_series(1, %s) g, generate_series(1, 2) e",
            (k,),
        )


async def keep_leased(provider: PostgresProvider, k: int) -> None:
    """Insert *k* activity items held by other workers, with their instances.

    As long-running activities in flight elsewhere would be (leased far
    ahead, of a name no runtime here serves); how many are in flight is
    what a step's acknowledgement must not depend on.
    """
    s = quote_ident(provider.schema)
    async with provider._connection() as conn:
        await _instances(conn, s, "held", "Running", k)
        await conn.execute(
            f"INSERT INTO {s}.activities (instance_id, execution_id, event_id,"
            " name, body, visible_at, lock_token, attempt)"
            " SELECT 'held-' || g, 1, 2, 'elsewhere', '{}', 1e12, 'tok-' || g, 1"
            " FROM generate_series(1, %s) g",
            (k,),
        )
        await conn.execute(f"ANALYZE {s}.instances, {s}.activities")


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("n", type=int, nargs="?", default=1000)
    ap.add_argument("--procs", type=int, default=1, help="runtime processes")
    ap.add_argument("--url", help="PostgreSQL URL (default: $PERDURE_DB)")
    ap.add_argument("--oc", type=int, default=100, help="orch. concurrency")
    ap.add_argument("--ac", type=int, default=100, help="activity concurrency")
    ap.add_argument(
        "--start-tasks",
        type=int,
        default=1,
        help="concurrent start_orchestration callers (1: one by one, like the peers)",
    )
    ap.add_argument(
        "--prestart",
        action="store_true",
        help="create all instances before the runtimes start; time the drain only",
    )
    ap.add_argument(
        "--long",
        action="store_true",
        help="one instance of N sequential activities instead of N chains",
    )
    ap.add_argument(
        "--kept",
        type=int,
        default=0,
        metavar="K",
        help="K finished instances in the table before the run (none purged)",
    )
    ap.add_argument(
        "--leased",
        type=int,
        default=0,
        metavar="K",
        help="K activity items held by other workers during the run",
    )
    ap.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        if os.environ.get("PG_CHAIN_PROFILE"):  # a cProfile dump per runtime
            import cProfile

            with cProfile.Profile(time.process_time) as prof:
                await serve(args.serve, args.oc, args.ac)
            prof.dump_stats(f"{os.environ['PG_CHAIN_PROFILE']}.{os.getpid()}")
            return
        await serve(args.serve, args.oc, args.ac)
        return
    base = (
        args.url
        or os.environ.get("PERDURE_DB")
        or os.environ.get("PERDURE_TEST_POSTGRES_URL")
    )
    if not base or not base.startswith(("postgresql://", "postgres://")):
        ap.error("give a PostgreSQL URL with --url or PERDURE_DB")
    schema = f"perdure_bench_{uuid.uuid4().hex[:10]}"
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    # Create the schema up front so that start-up is not part of the timing.
    provider = PostgresProvider(url)
    await provider.open()
    try:
        if args.kept:
            await keep_finished(provider, args.kept)
        if args.leased:
            await keep_leased(provider, args.leased)
        result = await drive(args, url)
        if args.long:
            # Counted after the runtimes stopped (drive's finally), so that
            # their last transactions are in.
            before = result.pop("before")
            assert isinstance(before, int)
            total = await commits(url) - before - 1
            result["commits_per_step"] = round(total / args.n, 3)
        print(json.dumps(result), flush=True)
    finally:
        await provider.drop_schema()
        await provider.close()


if __name__ == "__main__":
    asyncio.run(main())
