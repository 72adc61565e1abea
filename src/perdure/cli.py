"""The ``perdure`` command line (also ``python -m perdure``).

Subcommands: ``demo``, ``worker``, ``check``, ``start``, ``status``,
``wait``, ``raise``, ``cancel``, ``resume``, ``rewind``, ``list``,
``delete``, ``purge``, ``history``, ``values``, ``schedule``, ``doctor`` and
``ui``.
Storage comes from ``--db`` (before or after the subcommand), else the
``PERDURE_DB`` environment variable, else ``sqlite:///perdure.db``; a plain
file path is taken as a SQLite file. Errors print one line to stderr and exit non-zero
(1 for failures, 2 for bad arguments, 130 when interrupted).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from . import _cli_commands as c, _cli_operate as op, _cli_schedule, _cli_ui
from ._cli_check import CHECK_HELP, run_check
from ._cli_worker import CliError, load_handlers, run_worker
from ._client import Client
from ._errors import PerdureError
from ._tree import printable

__all__ = ["DEFAULT_DB", "build_parser", "main", "storage_url"]

#: Storage used when neither ``--db`` nor ``PERDURE_DB`` is given.
DEFAULT_DB = "sqlite:///perdure.db"

_WORKER_HELP = """\
Host orchestrations and activities until SIGINT or SIGTERM, then stop
gracefully (running activities get --shutdown-timeout seconds).

MODULE[:ATTR] is imported with the current directory on sys.path. It may name:
  - a module: its ORCHESTRATIONS and ACTIVITIES lists if it defines either,
    otherwise every @perdure.orchestration / @perdure.activity function in it;
  - a decorated function, or a list/tuple (nested is fine) of them;
  - a dict with "orchestrations" and/or "activities" keys;
  - a callable taking no arguments that returns any of the above.
Examples: perdure worker myapp   perdure worker myapp.flows:HANDLERS
"""

Command = Callable[[argparse.Namespace, Client], Awaitable[int]]


def storage_url(value: str | None) -> str:
    """Resolve the storage URL: *value*, else ``$PERDURE_DB``, else the default.

    A value without ``://`` is a SQLite file path.

    Raises:
        CliError: ``--db`` or ``$PERDURE_DB`` is set but empty (it must not
            silently mean the default file).
    """
    env = os.environ.get("PERDURE_DB")
    if value == "" or (value is None and env == ""):
        raise CliError("the storage URL is empty (--db or PERDURE_DB)")
    url = value or env or DEFAULT_DB
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    return url


def _seconds(text: str) -> float:
    """Parse a finite, non-negative number of seconds (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a finite number of seconds: {text!r}")
    return value


def _execution(text: str) -> int:
    """Parse an execution id, 1 to 2**62 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an execution id: {text!r}") from None
    if not 1 <= value <= 2**62:
        raise argparse.ArgumentTypeError(f"no execution {text} (ids start at 1)")
    return value


def _sqlite_file(url: str) -> Path | None:
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite" or rest in (":memory:", "/:memory:"):
        return None
    return Path(rest[1:]) if rest.startswith("/") and len(rest) > 1 else None


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``perdure`` command."""
    db_help = f"storage URL or SQLite file (default: $PERDURE_DB or {DEFAULT_DB})"
    parser = argparse.ArgumentParser(
        prog="perdure",
        description="perdure: durable execution for Python.",
        epilog="Run 'perdure demo' to see a crash and a resume.",
    )
    parser.add_argument("--db", help=db_help)
    # The same option after the subcommand; SUPPRESS keeps a value given
    # before the subcommand from being reset to a default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run the sample order workflow with a crash and a resume",
        description="Run the sample order workflow on a fresh SQLite file: a "
        "worker process is killed with SIGKILL mid-way, a new runtime resumes "
        "it, and the history is printed as a tree of task scopes.",
    )
    demo.add_argument(
        "--db",
        dest="demo_db",
        metavar="PATH",
        help="SQLite file to use; deleted first if it exists "
        "(default: a new file in a temporary directory)",
    )

    worker = sub.add_parser(
        "worker",
        parents=[common],
        help="host orchestrations and activities (MODULE[:ATTR])",
        description=_WORKER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("target", metavar="MODULE[:ATTR]")
    worker.add_argument("--role", choices=["all", "orchestrator", "worker"])
    worker.add_argument("--lock-timeout", type=float, metavar="S")
    worker.add_argument("--poll-interval", type=float, metavar="S")
    worker.add_argument("--orchestration-concurrency", type=int, metavar="N")
    worker.add_argument("--activity-concurrency", type=int, metavar="N")
    worker.add_argument("--cancellation-grace-period", type=float, metavar="S")
    worker.add_argument(
        "--tag",
        action="append",
        dest="activity_tags",
        metavar="TAG",
        help="run activities scheduled with this tag too (repeatable; docs/routing.md)",
    )
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds running activities get to finish on shutdown (default 10)",
    )

    check = sub.add_parser(
        "check",
        parents=[common, as_json],
        help="replay live instances against new code (a pre-deploy gate)",
        description=CHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("target", metavar="MODULE[:ATTR]")

    start = sub.add_parser("start", parents=[common], help="start an instance")
    start.add_argument("name", metavar="NAME", help="orchestration name")
    start.add_argument("instance_id", metavar="INSTANCE_ID")
    start.add_argument("--input", metavar="JSON", help="input as JSON")
    start.add_argument("--version", help="orchestration version (default: latest)")
    start.add_argument(
        "--start-at",
        metavar="TIME",
        help="start it at TIME, not now (ISO-8601 with a timezone, or Unix seconds)",
    )
    start.add_argument(
        "--if-exists",
        choices=["error", "ignore"],
        default="error",
        help="when the id is taken: fail (default) or do nothing, exit 0",
    )

    status = sub.add_parser(
        "status", parents=[common, as_json], help="show an instance's status"
    )
    status.add_argument("instance_id", metavar="INSTANCE")

    wait = sub.add_parser(
        "wait",
        parents=[common, as_json],
        help="wait until an instance ends (exit 0 only if Completed)",
    )
    wait.add_argument("instance_id", metavar="INSTANCE")
    wait.add_argument("--timeout", type=_seconds, default=60.0, metavar="S")

    raise_ = sub.add_parser("raise", parents=[common], help="raise an external event")
    raise_.add_argument("instance_id", metavar="INSTANCE")
    raise_.add_argument("event", metavar="EVENT")
    raise_.add_argument("--data", metavar="JSON", help="event data as JSON")
    raise_.add_argument(
        "--start",
        metavar="NAME",
        help="start the instance as orchestration NAME first if it does not "
        "exist (signal-with-start)",
    )
    raise_.add_argument("--start-input", metavar="JSON", help="its input as JSON")
    raise_.add_argument("--start-version", metavar="V", help="its version")

    cancel = sub.add_parser("cancel", parents=[common], help="cancel an instance")
    cancel.add_argument("instance_id", metavar="INSTANCE")
    cancel.add_argument("--reason", default="", help="recorded in the history")

    resume = sub.add_parser(
        "resume", parents=[common], help="resume a Suspended instance"
    )
    resume.add_argument("instance_id", metavar="INSTANCE")

    rewind = sub.add_parser(
        "rewind",
        parents=[common],
        help="rewind a Failed instance to before its failure",
        description="Take a Failed instance back to before its failure (the "
        "failure stays in its history, marked as rewound) and resume it with "
        "the code the runtimes have now.",
    )
    rewind.add_argument("instance_id", metavar="INSTANCE")

    op.add_parsers(sub, [common], as_json)
    _cli_schedule.add_parser(sub, [common], as_json)

    history = sub.add_parser(
        "history",
        parents=[common, as_json],
        help="show a history as a tree of task scopes",
        description="Print an execution's history as a tree of task scopes, "
        "with each piece of work's outcome; select winners and cancelled "
        "losers are marked. --json prints the raw events instead.",
    )
    history.add_argument("instance_id", metavar="INSTANCE")
    history.add_argument(
        "--execution",
        type=_execution,
        metavar="N",
        help="execution id (default: latest)",
    )

    values = sub.add_parser(
        "values",
        parents=[common],
        help="print an instance's values (ctx.set_value) as JSON",
        description="Print the values the instance's orchestration stored with "
        "ctx.set_value, as one JSON object, read from storage (the instance "
        "does not run for it).",
    )
    values.add_argument("instance_id", metavar="INSTANCE")

    doctor = sub.add_parser(
        "doctor",
        parents=[common],
        help="check the database: version, latency, schema, pooler, clock, vacuum",
        description="Connect to the storage and report what perdure needs of it; "
        "exit 0 when healthy, 1 with a one-line reason otherwise.",
    )
    doctor.add_argument("--runtimes", type=int, default=1, metavar="N")
    doctor.add_argument("--pool-size", type=int, default=10, metavar="N")
    _cli_ui.add_parser(sub, [common])
    return parser


_COMMANDS: dict[str, Command] = {
    "start": c.cmd_start,
    "status": c.cmd_status,
    "wait": c.cmd_wait,
    "raise": c.cmd_raise,
    "cancel": c.cmd_cancel,
    "resume": c.cmd_resume,
    "rewind": c.cmd_rewind,
    "list": op.cmd_list,
    "delete": op.cmd_delete,
    "purge": op.cmd_purge,
    "history": c.cmd_history,
    "values": c.cmd_values,
    "schedule": _cli_schedule.cmd_schedule,
}


async def _client_command(args: argparse.Namespace, url: str) -> int:
    path = _sqlite_file(url)
    creates = (
        args.command == "start"
        or (args.command == "raise" and args.start is not None)
        or (args.command == "schedule" and args.schedule_command == "create")
    )
    if not creates and path is not None and not path.exists():
        raise CliError(f"no database at {path} (use --db or set PERDURE_DB)")
    async with Client(url) as client:
        return await _COMMANDS[args.command](args, client)


def _worker(args: argparse.Namespace, url: str) -> int:
    orchestrations, activities = load_handlers(args.target)
    names = (
        "role",
        "lock_timeout",
        "poll_interval",
        "orchestration_concurrency",
        "activity_concurrency",
        "cancellation_grace_period",
    )
    options = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.activity_tags:
        options["activity_tags"] = set(args.activity_tags)
    asyncio.run(
        run_worker(
            url,
            orchestrations,
            activities,
            shutdown_timeout=args.shutdown_timeout,
            options=options,
        )
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    # Every reason the check cannot run is exit status 2 (CheckAborted).
    try:
        url = storage_url(args.db)
    except CliError as exc:
        raise c.CliUsageError(str(exc)) from None
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise c.CliUsageError(f"no database at {path} (use --db or set PERDURE_DB)")
    return asyncio.run(run_check(args.target, url, as_json=args.json))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``perdure`` command; return its exit status.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            return run_demo(args.demo_db)
        if args.command == "check":
            return _check(args)
        url = storage_url(args.db)
        if args.command == "doctor":
            from ._doctor import run_doctor

            return asyncio.run(
                run_doctor(url, runtimes=args.runtimes, pool_size=args.pool_size)
            )
        if args.command == "worker":
            return _worker(args, url)
        if args.command == "ui":
            return _cli_ui.run_ui(args, url)
        return asyncio.run(_client_command(args, url))
    except KeyboardInterrupt:
        print("perdure: interrupted", file=sys.stderr)
        return 130
    except c.CliUsageError as exc:
        print(f"perdure: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except (CliError, PerdureError, TimeoutError, ValueError, OSError) as exc:
        print(f"perdure: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    # Multi-line messages (tracebacks from storage drivers) would break the
    # one-line contract; whitespace runs collapse to single spaces.
    return printable(" ".join(str(exc).split())) or type(exc).__name__
