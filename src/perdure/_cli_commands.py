"""Client-side subcommands of the ``perdure`` CLI (start, status, wait, ...).

Each ``cmd_*`` coroutine takes the parsed arguments and an open `Client`,
prints its result to stdout and returns the process exit status. Failures
are raised (`CliError`, `PerdureError`, ...) and reported by ``cli.main``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from datetime import UTC, datetime
from typing import Any

from ._cli_worker import CliError
from ._client import Client
from ._client_types import FINISHED, StartSpec
from ._core._history import event_to_json
from ._errors import ErrorInfo, InstanceExists, InstanceNotFound
from ._state import OrchestrationState
from ._tree import printable, render_history

__all__ = [
    "CliUsageError",
    "cmd_cancel",
    "cmd_history",
    "cmd_raise",
    "cmd_resume",
    "cmd_rewind",
    "cmd_start",
    "cmd_status",
    "cmd_values",
    "cmd_wait",
    "iso",
    "parse_json",
    "parse_time",
    "require",
    "state_json",
    "use_ascii",
]


class CliUsageError(CliError):
    """Bad command-line input (exit status 2, like argparse's own errors)."""


def parse_json(text: str | None, option: str) -> Any:
    """Decode a JSON option value (``None`` when the option was not given).

    Raises:
        CliUsageError: *text* is not valid JSON.
    """
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliUsageError(
            f"{option} is not valid JSON ({exc.msg} at column {exc.colno}); "
            f"""quote strings, e.g. {option} '"text"'"""
        ) from None


def parse_time(text: str | None, option: str) -> float | None:
    """Decode a time option: ISO-8601 with a timezone, or Unix seconds.

    Returns Unix seconds (``None`` when the option was not given).

    Raises:
        CliUsageError: *text* is not a time, or has no timezone (a naive
            time would be read in whatever zone the machine is set to).
    """
    if text is None:
        return None
    stripped = text.strip()
    try:
        number = float(stripped)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise CliUsageError(f"{option} {text!r} is not a finite Unix time")
        return number
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise CliUsageError(
            f"{option} {text!r} is not a time: give ISO-8601 with a timezone "
            "(2025-01-31T09:00:00Z, 2025-01-31T10:00+01:00) or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        example = stripped + ("Z" if "T" in stripped or " " in stripped else "T00:00Z")
        raise CliUsageError(
            f"{option} {text!r} has no timezone, so it is ambiguous: add one "
            f"(e.g. {example} for UTC) or give Unix seconds"
        )
    return moment.timestamp()


def iso(unix: float) -> str:
    """Unix seconds as an ISO-8601 UTC time, to the second."""
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def use_ascii() -> bool:
    """True when stdout cannot print the tree's Unicode marks."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗…→├└│↺".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def state_json(state: OrchestrationState) -> dict[str, Any]:
    return {
        "instance_id": state.instance_id,
        "name": state.name,
        "version": state.version,
        "execution_id": state.execution_id,
        "status": state.status,
        "output": state.output,
        "error": state.error.to_json() if state.error is not None else None,
        "custom_status": state.custom_status,
        "created_at": state.created_at.isoformat(),
        "updated_at": state.updated_at.isoformat(),
    }


def _print_state(
    state: OrchestrationState, as_json: bool, show_stack: bool = False
) -> None:
    data = state_json(state)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    rows = [
        ("instance", state.instance_id),
        ("name", f"{state.name} {state.version}".strip()),
        ("status", state.status),
        ("execution", str(state.execution_id)),
    ]
    if state.status == "Completed":
        rows.append(("output", json.dumps(state.output, ensure_ascii=False)))
    if state.error is not None:
        rows.append(("error", f"{state.error} [{state.error.category}]"))
    if state.custom_status is not None:
        rows.append(("custom", json.dumps(state.custom_status, ensure_ascii=False)))
    rows += [("created", data["created_at"]), ("updated", data["updated_at"])]
    for key, value in rows:
        print(f"{key:<10} {printable(value)}")
    if show_stack and state.error is not None and state.error.stack:
        # Last, indented, a line at a time: a traceback reads top-down.
        print("stack")
        for line in state.error.stack.rstrip("\n").split("\n"):
            print(f"  {printable(line)}")


async def require(client: Client, instance_id: str) -> OrchestrationState:
    state = await client.get_status(instance_id)
    if state is None:
        raise InstanceNotFound(instance_id)
    return state


async def cmd_start(args: argparse.Namespace, client: Client) -> int:
    """``perdure start NAME INSTANCE_ID [--input JSON] [--version V] ...``.

    ``--start-at TIME`` delays the start; ``--if-exists ignore`` makes a
    taken id a no-op (exit 0) instead of an error.
    """
    value = parse_json(args.input, "--input")
    start_at = parse_time(args.start_at, "--start-at")
    try:
        await client.start_orchestration(
            args.instance_id, args.name, value, version=args.version, start_at=start_at
        )
    except InstanceExists:
        if args.if_exists != "ignore":
            raise
        state = await client.get_status(args.instance_id)
        status = f" ({state.status})" if state is not None else ""
        print(
            printable(
                f"{args.instance_id} already exists{status}; nothing started "
                "(--if-exists ignore)"
            )
        )
        return 0
    if start_at is None:
        print(printable(f"started {args.instance_id} ({args.name})"))
    else:
        print(
            printable(
                f"scheduled {args.instance_id} ({args.name}) to start at "
                f"{iso(start_at)}"
            )
        )
    return 0


async def cmd_status(args: argparse.Namespace, client: Client) -> int:
    """``perdure status INSTANCE [--json]``: a failure's stack is shown too."""
    state = await require(client, args.instance_id)
    if state.status == "Failed" and state.error is not None and not state.error.stack:
        stack = await _origin_stack(client, state.instance_id, state.error)
        state = dataclasses.replace(
            state, error=dataclasses.replace(state.error, stack=stack)
        )
    _print_state(state, args.json, show_stack=True)
    return 0


async def _origin_stack(
    client: Client, instance_id: str, error: ErrorInfo
) -> str | None:
    """The stack of the activity or child failure that *error* passed on.

    An orchestration that does not catch an `ActivityFailed` (or
    `SubOrchestrationFailed`) fails with its type and message; the stack
    was recorded with the failure event in history.
    """
    for event in reversed(await client.get_history(instance_id)):
        if event.type in ("ActivityFailed", "SubOrchestrationFailed"):
            cause = ErrorInfo.from_json(getattr(event, "error", None) or {})
            if (cause.type, cause.message) == (error.type, error.message):
                return cause.stack
    return None


async def cmd_wait(args: argparse.Namespace, client: Client) -> int:
    """``perdure wait INSTANCE [--timeout S]``: 0 if Completed, else 1."""
    state = await client.wait_for_orchestration(args.instance_id, timeout=args.timeout)
    _print_state(state, args.json)
    return 0 if state.status == "Completed" else 1


async def cmd_raise(args: argparse.Namespace, client: Client) -> int:
    """``perdure raise INSTANCE EVENT [--data JSON] [--start NAME ...]``.

    A finished instance takes no events: that is reported on stderr with
    exit status 1, and nothing is raised. ``--start NAME`` starts the
    instance first when it does not exist (signal-with-start).
    """
    data = parse_json(args.data, "--data")
    start_input = parse_json(args.start_input, "--start-input")
    if args.start is None and (
        args.start_input is not None or args.start_version is not None
    ):
        raise CliUsageError("--start-input and --start-version need --start NAME")
    state = await client.get_status(args.instance_id)
    if state is None and args.start is None:
        raise InstanceNotFound(args.instance_id)
    if state is not None and state.status in FINISHED:
        print(
            printable(
                f"{args.instance_id} is {state.status}: a finished instance "
                f"takes no events; {args.event!r} was not raised"
            ),
            file=sys.stderr,
        )
        return 1
    spec = None
    if args.start is not None:
        spec = StartSpec(args.start, start_input, args.start_version)
    await client.raise_event(args.instance_id, args.event, data, start=spec)
    started = f" (started it as {args.start})" if state is None else ""
    print(printable(f"raised event {args.event!r} on {args.instance_id}{started}"))
    return 0


async def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    """``perdure cancel INSTANCE [--reason TEXT]``."""
    state = await require(client, args.instance_id)
    if state.status not in ("Running", "Suspended"):
        print(
            printable(
                f"{args.instance_id} is already {state.status}; nothing to cancel"
            )
        )
        return 0
    await client.cancel_instance(args.instance_id, args.reason)
    note = " (it is Suspended: the cancel runs when it is resumed)"
    suffix = note if state.status == "Suspended" else ""
    print(printable(f"cancellation of {args.instance_id} requested{suffix}"))
    return 0


async def cmd_resume(args: argparse.Namespace, client: Client) -> int:
    """``perdure resume INSTANCE``: resume a Suspended instance."""
    state = await require(client, args.instance_id)
    if state.status != "Suspended":
        print(
            printable(
                f"{args.instance_id} is {state.status}, not Suspended; "
                "nothing to resume"
            ),
            file=sys.stderr,
        )
        return 1
    await client.resume(args.instance_id)
    print(
        printable(
            f"{args.instance_id} resumed; its next turn runs the code "
            "the runtimes have now"
        )
    )
    return 0


async def cmd_rewind(args: argparse.Namespace, client: Client) -> int:
    """``perdure rewind INSTANCE``: rewind a Failed instance."""
    state = await require(client, args.instance_id)
    if state.status != "Failed":
        print(
            printable(
                f"{args.instance_id} is {state.status}, not Failed; nothing to rewind"
            ),
            file=sys.stderr,
        )
        return 1
    await client.rewind(args.instance_id)
    print(
        printable(
            f"{args.instance_id} rewound to before its failure; its next turn "
            "runs the code the runtimes have now"
        )
    )
    return 0


async def cmd_history(args: argparse.Namespace, client: Client) -> int:
    """``perdure history INSTANCE [--execution N] [--json]``."""
    state = await require(client, args.instance_id)
    execution = args.execution if args.execution is not None else state.execution_id
    events = await client.get_history(args.instance_id, execution)
    if not events:
        raise CliError(
            f"instance {args.instance_id!r} has no execution {execution} "
            f"(latest is {state.execution_id})"
        )
    if args.json:
        lines = ",\n  ".join(event_to_json(e) for e in events)
        print(f"[\n  {lines}\n]")
        return 0
    title = f"instance {args.instance_id}  execution {execution}  {state.status}"
    if execution != state.execution_id:
        title = f"instance {args.instance_id}  execution {execution}"
    sys.stdout.write(render_history(events, title=title, ascii=use_ascii()))
    return 0


async def cmd_values(args: argparse.Namespace, client: Client) -> int:
    """``perdure values INSTANCE``: the instance's values as one JSON object."""
    values = await client.get_values(args.instance_id)
    print(json.dumps(values, ensure_ascii=use_ascii(), indent=2))
    return 0
