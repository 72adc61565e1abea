"""Operating subcommands of the ``perdure`` CLI: ``list``, ``delete``, ``purge``.

They cover the client's operating calls (DESIGN §10): `Client.list_instances`
and `Client.iter_instances` with every filter and the cursor,
`Client.delete_instance` and `Client.purge_instances`. Like the other
``cmd_*`` coroutines they print to stdout and return the exit status.
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from ._cli_commands import CliUsageError, iso, parse_time, require, state_json
from ._client import Client
from ._client_types import FINISHED
from ._state import OrchestrationState
from ._tree import printable
from .providers._base import InstanceQuery, InstanceStatus
from .providers._urls import redact_url

__all__ = ["STATUSES", "add_parsers", "cmd_delete", "cmd_list", "cmd_purge"]

#: Every instance status, as ``--status`` takes it (any letter case).
STATUSES: tuple[InstanceStatus, ...] = (
    "Running",
    "Suspended",
    "Completed",
    "Failed",
    "Cancelled",
)
_DEFAULT_LIMIT = 100
_ALL_PAGE_SIZE = 500

_TIME_HELP = "ISO-8601 with a timezone (2025-01-31T09:00Z) or Unix seconds"

_LIST_HELP = f"""\
List instances, newest first. The filters combine; TIME is
{_TIME_HELP}.

One page is printed (--limit, default 100). When more instances match,
stderr shows the command that prints the next page (its --cursor); --all
pages through every match. --json prints {{"items": [...], "next_cursor": C}}.
"""

_PURGE_HELP = f"""\
Delete finished instances (Completed, Failed, Cancelled; --status picks some)
that ended before TIME, with their history and their sub-orchestrations:
retention. Running and Suspended instances are never purged. TIME is
{_TIME_HELP}. --dry-run counts what would be deleted and deletes nothing.
"""


def _status(text: str) -> str:
    """A status in any letter case (argparse then checks the choices)."""
    return {s.lower(): s for s in STATUSES}.get(text.lower(), text)


def _page_size(text: str) -> int:
    """Parse a page size, 1 to 10,000 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be from 1 to 10000, not {value}")
    return value


def add_parsers(
    sub: Any,
    parents: Sequence[argparse.ArgumentParser],
    as_json: argparse.ArgumentParser,
) -> None:
    """Add ``list``, ``delete`` and ``purge`` to the subcommands *sub*."""
    list_ = sub.add_parser(
        "list",
        parents=[*parents, as_json],
        help="list instances (filters, paging)",
        description=_LIST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    list_.add_argument("--status", type=_status, choices=STATUSES)
    list_.add_argument("--name", help="orchestration name")
    list_.add_argument("--version", help="orchestration version")
    list_.add_argument(
        "--created-after", metavar="TIME", help="created at or after TIME"
    )
    list_.add_argument("--created-before", metavar="TIME", help="created before TIME")
    list_.add_argument(
        "--limit",
        type=_page_size,
        metavar="N",
        help=f"page size, 1 to 10000 (default {_DEFAULT_LIMIT}; with --all "
        f"{_ALL_PAGE_SIZE})",
    )
    paging = list_.add_mutually_exclusive_group()
    paging.add_argument(
        "--cursor", metavar="C", help="the page after the one that printed C"
    )
    paging.add_argument("--all", action="store_true", help="every matching instance")

    delete = sub.add_parser(
        "delete",
        parents=parents,
        help="delete an instance with its history and sub-orchestrations",
        description="Delete an instance with its history and its "
        "sub-orchestrations (whatever their status). A Running instance "
        "needs --force: cancel it first, or force.",
    )
    delete.add_argument("instance_id", metavar="INSTANCE")
    delete.add_argument(
        "--force", action="store_true", help="delete it even if it is Running"
    )

    purge = sub.add_parser(
        "purge",
        parents=parents,
        help="delete finished instances that ended before a time (retention)",
        description=_PURGE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    purge.add_argument("--finished-before", required=True, metavar="TIME")
    purge.add_argument(
        "--status",
        type=_status,
        choices=STATUSES,
        nargs="+",
        action="extend",
        metavar="S",
        help="Completed, Failed and/or Cancelled (default: all three)",
    )
    purge.add_argument(
        "--dry-run", action="store_true", help="count them, delete nothing"
    )


# ------------------------------------------------------------------- list
async def cmd_list(args: argparse.Namespace, client: Client) -> int:
    """``perdure list [filters] [--limit N] [--cursor C | --all] [--json]``."""
    after = parse_time(args.created_after, "--created-after")
    before = parse_time(args.created_before, "--created-before")
    next_cursor: str | None = None
    states: AsyncIterator[OrchestrationState[Any]]
    if args.all:
        states = client.iter_instances(
            status=args.status,
            name=args.name,
            version=args.version,
            created_after=after,
            created_before=before,
            page_size=args.limit or _ALL_PAGE_SIZE,
        )
    else:
        try:
            page = await client.list_instances(
                status=args.status,
                name=args.name,
                version=args.version,
                created_after=after,
                created_before=before,
                limit=args.limit or _DEFAULT_LIMIT,
                cursor=args.cursor,
            )
        except ValueError:
            if args.cursor is None:
                raise
            raise CliUsageError(
                f"--cursor {args.cursor!r} is not a cursor that perdure list "
                "printed: use the one its 'more instances match' line shows, "
                "with the same filters"
            ) from None
        states = _aiter(page.items)
        next_cursor = page.next_cursor
    if args.json:
        await _print_json(states, next_cursor)
    else:
        _print_table([_row(s) async for s in states])
    if next_cursor is not None:
        print(
            f"more instances match: {_next_command(args, next_cursor)}",
            file=sys.stderr,
        )
    return 0


async def _aiter(
    items: Iterable[OrchestrationState[Any]],
) -> AsyncIterator[OrchestrationState[Any]]:
    for item in items:
        yield item


async def _print_json(
    states: AsyncIterator[OrchestrationState[Any]], next_cursor: str | None
) -> None:
    # One instance a line, written as they come: --all never holds them all.
    sep = "\n  "
    sys.stdout.write('{"items": [')
    async for state in states:
        sys.stdout.write(sep + json.dumps(state_json(state), ensure_ascii=False))
        sep = ",\n  "
    sys.stdout.write(f'\n], "next_cursor": {json.dumps(next_cursor)}}}\n')


def _row(state: OrchestrationState[Any]) -> tuple[str, str, str, str]:
    updated = state.updated_at.isoformat(timespec="seconds")
    return printable(state.instance_id), printable(state.name), state.status, updated


def _print_table(rows: list[tuple[str, str, str, str]]) -> None:
    if not rows:
        print("no instances")
        return
    width = max(len("INSTANCE"), *(len(row[0]) for row in rows))
    name_width = max(len("NAME"), *(len(row[1]) for row in rows))
    print(f"{'INSTANCE':<{width}}  {'NAME':<{name_width}}  {'STATUS':<9}  UPDATED")
    for iid, name, status, updated in rows:
        print(f"{iid:<{width}}  {name:<{name_width}}  {status:<9}  {updated}")


def _next_command(args: argparse.Namespace, cursor: str) -> str:
    """The ``perdure list`` command that prints the page after this one."""
    words = ["perdure"]
    db = getattr(args, "db", None)
    if db:
        words += ["--db", redact_url(db)]  # never echo a password
    words.append("list")
    options = (
        ("--status", args.status),
        ("--name", args.name),
        ("--version", args.version),
        ("--created-after", args.created_after),
        ("--created-before", args.created_before),
        ("--limit", None if args.limit is None else str(args.limit)),
    )
    for option, value in options:
        if value is not None:
            words += [option, value]
    if args.json:
        words.append("--json")
    words += ["--cursor", cursor]
    return printable(" ".join(shlex.quote(word) for word in words))


# ---------------------------------------------------------- delete, purge
async def cmd_delete(args: argparse.Namespace, client: Client) -> int:
    """``perdure delete INSTANCE [--force]``: sub-orchestrations go with it."""
    state = await require(client, args.instance_id)
    if state.status == "Running" and not args.force:
        print(
            printable(
                f"{args.instance_id} is Running; cancel it first (perdure cancel "
                f"{args.instance_id}) or delete it anyway with --force"
            ),
            file=sys.stderr,
        )
        return 1
    await client.delete_instance(args.instance_id, force=args.force)
    print(
        printable(
            f"deleted {args.instance_id} ({state.status}) with its history "
            "and sub-orchestrations"
        )
    )
    return 0


async def cmd_purge(args: argparse.Namespace, client: Client) -> int:
    """``perdure purge --finished-before TIME [--status S ...] [--dry-run]``."""
    before = parse_time(args.finished_before, "--finished-before")
    assert before is not None  # a required option
    statuses: tuple[InstanceStatus, ...] = (
        tuple(dict.fromkeys(args.status)) if args.status else FINISHED
    )
    live = [s for s in statuses if s not in FINISHED]
    if live:
        raise CliUsageError(
            f"purge deletes finished instances only (Completed, Failed, Cancelled), "
            f"not {', '.join(live)} ones: cancel an instance first, or remove "
            "one with 'perdure delete INSTANCE --force'"
        )
    what = f"({', '.join(statuses)}) that finished before {iso(before)}"
    if args.dry_run:
        count = await _count_purgeable(client, statuses, before)
        print(
            f"dry run: would delete {_instances(count)} {what}, with their "
            "sub-orchestrations; nothing deleted"
        )
        return 0
    count = await client.purge_instances(status=statuses, finished_before=before)
    print(f"deleted {_instances(count)} {what}, with their sub-orchestrations")
    return 0


def _instances(count: int) -> str:
    return f"{count} instance" + ("" if count == 1 else "s")


async def _count_purgeable(
    client: Client, statuses: Sequence[InstanceStatus], before: float
) -> int:
    """How many instances `Client.purge_instances` would delete now.

    A purge picks top-level instances only (their sub-orchestrations go
    with them), which `OrchestrationState` does not tell; so this pages
    through the provider's records, with the client's retry. An instance
    that finished before *before* was also created before it.
    """
    store = await client._store()
    count = 0
    for status in statuses:
        cursor: str | None = None
        while True:
            query = InstanceQuery(
                status=status, created_before=before, limit=1000, cursor=cursor
            )
            batch = await client._retry.call(
                functools.partial(store.query_instances, query)
            )
            count += sum(
                1
                for r in batch.records
                if r.parent_instance_id is None and r.updated_at < before
            )
            cursor = batch.next_cursor
            if cursor is None:
                break
    return count
