"""``perdure schedule``: create, list, show, pause, resume, delete schedules.

The command line face of `Client.create_schedule` and the other schedule
calls (docs/schedules.md). Like the other ``cmd_*`` coroutines it prints to
stdout and returns the exit status: 1 for an unknown schedule or one that
exists, 2 for bad input (a bad cron expression, interval or id), and
nothing is stored then.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from ._cli_commands import CliUsageError, iso, parse_json, parse_time
from ._cli_worker import CliError
from ._client import Client
from ._client_types import FINISHED
from ._errors import InstanceExists
from ._schedules import PREFIX, ScheduleInfo
from ._tree import printable

__all__ = ["add_parser", "cmd_schedule"]

_HELP = """\
Schedules start an orchestration on a timetable: every N seconds, or on a
cron expression (UTC). A schedule is the instance schedule:<ID>; each fire
starts a run <ID>:<slot time>. A runtime ('perdure worker') must be running
for schedules to fire.

  perdure schedule create NAME ID --every 30 [--input JSON]
  perdure schedule create NAME ID --cron '0 2 * * *' [--overlap allow]
  perdure schedule list | show ID | pause ID | resume ID | delete ID
"""


def _interval(text: str) -> float:
    """Parse a finite number of seconds above zero (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds above 0, not {text!r}"
        )
    return value


def add_parser(
    sub: Any,
    parents: Sequence[argparse.ArgumentParser],
    as_json: argparse.ArgumentParser,
) -> None:
    """Add ``schedule`` and its subcommands to the subcommands *sub*."""
    schedule = sub.add_parser(
        "schedule",
        parents=parents,
        help="create, list, show, pause, resume or delete schedules",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = schedule.add_subparsers(
        dest="schedule_command", metavar="ACTION", required=True
    )
    create = actions.add_parser(
        "create",
        parents=parents,
        help="start orchestration NAME on a timetable, as schedule ID",
        description="Start orchestration NAME on a timetable, as schedule ID. "
        "Give --every or --cron. Slots missed while no runtime ran give one "
        "catch-up fire, not one per slot.",
    )
    create.add_argument("name", metavar="NAME", help="orchestration name")
    create.add_argument("schedule_id", metavar="ID")
    timetable = create.add_mutually_exclusive_group(required=True)
    timetable.add_argument(
        "--every", type=_interval, metavar="S", help="fire every S seconds"
    )
    timetable.add_argument(
        "--cron",
        metavar="EXPR",
        help="fire on cron expression EXPR, in UTC (5 fields, or 6 with seconds)",
    )
    create.add_argument("--input", metavar="JSON", help="each run's input as JSON")
    create.add_argument(
        "--overlap",
        choices=["skip", "allow"],
        default="skip",
        help="while the previous run is still Running: skip the fire "
        "(default) or start another run",
    )
    create.add_argument(
        "--start-at",
        metavar="TIME",
        help="no fire before TIME (ISO-8601 with a timezone, or Unix seconds)",
    )
    create.add_argument("--version", help="NAME's version (default: latest)")

    actions.add_parser(
        "list", parents=[*parents, as_json], help="list schedules with their state"
    )
    show = actions.add_parser(
        "show", parents=[*parents, as_json], help="show one schedule"
    )
    show.add_argument("schedule_id", metavar="ID")
    for action, text in (
        ("pause", "stop a schedule firing until it is resumed"),
        ("resume", "resume a paused schedule (slots that passed are skipped)"),
        ("delete", "delete a schedule (the runs it started stay)"),
    ):
        parser = actions.add_parser(action, parents=parents, help=text)
        parser.add_argument("schedule_id", metavar="ID")


async def cmd_schedule(args: argparse.Namespace, client: Client) -> int:
    """``perdure schedule ACTION ...``: run one schedule action."""
    action = args.schedule_command
    if action == "create":
        return await _create(args, client)
    if action == "list":
        return _print_list(await client.list_schedules(), args.json)
    found = await _require(client, args.schedule_id)
    if action == "show":
        return _print_one(found, args.json)
    if action == "delete":
        await client.delete_schedule(args.schedule_id)
        print(
            printable(f"deleted schedule {args.schedule_id}; the runs it started stay")
        )
        return 0
    if found.status in FINISHED:
        print(
            printable(
                f"schedule {args.schedule_id} is {found.status}: it takes no "
                f"{action}; delete it and create it again"
            ),
            file=sys.stderr,
        )
        return 1
    if action == "pause":
        await client.pause_schedule(args.schedule_id)
        print(printable(f"paused schedule {args.schedule_id}"))
    else:
        await client.resume_schedule(args.schedule_id)
        print(
            printable(
                f"resumed schedule {args.schedule_id}; slots that passed while "
                "it was paused are skipped"
            )
        )
    return 0


async def _create(args: argparse.Namespace, client: Client) -> int:
    value = parse_json(args.input, "--input")
    start_at = parse_time(args.start_at, "--start-at")
    try:
        await client.create_schedule(
            args.schedule_id,
            args.name,
            cron=args.cron,
            every=args.every,
            input=value,
            overlap=args.overlap,
            start_at=start_at,
            version=args.version,
        )
    except InstanceExists:
        raise CliError(f"schedule {args.schedule_id!r} already exists") from None
    except ValueError as exc:  # a bad cron expression or id; nothing stored
        raise CliUsageError(str(exc)) from None
    except ImportError as exc:  # cron without the 'schedules' extra
        raise CliError(str(exc)) from None
    timetable = f"every {args.every:g}s" if args.cron is None else f"cron {args.cron}"
    after = "" if start_at is None else f", from {iso(start_at)}"
    print(
        printable(
            f"created schedule {args.schedule_id}: {args.name} {timetable}{after}"
        )
    )
    return 0


async def _require(client: Client, schedule_id: str) -> ScheduleInfo:
    state = await client.get_status(PREFIX + schedule_id)
    if state is None:
        raise CliError(f"schedule {schedule_id!r} not found")
    return ScheduleInfo.from_state(state)


def _timetable(info: ScheduleInfo) -> str:
    if info.cron is not None:
        return f"cron {info.cron}"
    if info.every is not None:
        return f"every {info.every:g}s"
    return "-"  # before a runtime's first turn


def _state(info: ScheduleInfo) -> str:
    if info.status != "Running":
        return info.status
    if info.orchestration is None:
        return "new"  # no runtime has run its first turn yet
    return "paused" if info.paused else "active"


def _json(info: ScheduleInfo) -> dict[str, Any]:
    return {
        "schedule_id": info.schedule_id,
        "orchestration": info.orchestration,
        "cron": info.cron,
        "every": info.every,
        "overlap": info.overlap,
        "paused": info.paused,
        "next_fire": None if info.next_fire is None else info.next_fire.isoformat(),
        "last_run": info.last_run,
        "fires": info.fires,
        "skipped": info.skipped,
        "status": info.status,
    }


def _when(info: ScheduleInfo) -> str:
    if info.next_fire is None:
        return "-"
    return iso(info.next_fire.timestamp())


def _print_list(found: list[ScheduleInfo], as_json: bool) -> int:
    if as_json:
        print(json.dumps([_json(i) for i in found], ensure_ascii=False, indent=2))
        return 0
    if not found:
        print("no schedules")
        return 0
    header = ("SCHEDULE", "ORCHESTRATION", "TIMETABLE", "STATE", "NEXT FIRE", "FIRES")
    rows = [
        (
            printable(i.schedule_id),
            printable(i.orchestration or "-"),
            printable(_timetable(i)),
            _state(i),
            _when(i),
            str(i.fires),
        )
        for i in found
    ]
    widths = [max(len(r[n]) for r in [header, *rows]) for n in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _print_one(info: ScheduleInfo, as_json: bool) -> int:
    if as_json:
        print(json.dumps(_json(info), ensure_ascii=False, indent=2))
        return 0
    rows = [
        ("schedule", info.schedule_id),
        ("instance", PREFIX + info.schedule_id),
        ("starts", info.orchestration or "- (no runtime has run it yet)"),
        ("timetable", _timetable(info)),
        ("overlap", info.overlap),
        ("state", _state(info)),
        ("next fire", _when(info)),
        ("last run", info.last_run or "-"),
        ("fires", str(info.fires)),
        ("skipped", str(info.skipped)),
    ]
    for key, value in rows:
        print(f"{key:<10} {printable(value)}")
    return 0
