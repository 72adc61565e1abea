"""``perdure check``: replay live instances against new code before deploying it.

Every ``Running`` and ``Suspended`` instance is replayed against the
orchestrations ``MODULE[:ATTR]`` names (the convention of ``perdure
worker``), the way a runtime with that code would replay it after a
restart. Storage is only read (`Provider.list_instances`,
`Provider.read_history`); nothing is written.

Each instance gets a `Verdict`:

* ``ok``: the code replays its history to the end (an instance being
  rewound: its history without the failure, and the failed step does not
  fail again);
* ``breaks``: it does not (nondeterminism, or the code raised), so a
  runtime with this code would stop the instance;
* ``skipped``: the code does not register the instance's orchestration
  name and version. That is not an error: a runtime only takes the
  instances it has registered, so the instance waits for one that has it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from ._cli_commands import CliUsageError
from ._cli_worker import CliError, load_handlers
from ._core import _history as h
from ._core._driver import Driver
from ._core._rewind import plan_rewind
from ._errors import ErrorInfo, HandlerNotFound, NondeterminismError, PerdureError
from ._registry import Registry
from ._tree import printable
from ._turn import build_driver
from .providers import open_provider
from .providers._base import InstanceRecord, InstanceStatus, Provider

__all__ = [
    "CHECK_HELP",
    "LIVE_STATUSES",
    "CheckAborted",
    "Verdict",
    "check_instances",
    "live_instances",
    "run_check",
    "verdict",
]

CHECK_HELP = """\
Replay every Running and Suspended instance against the code MODULE[:ATTR]
names, without writing anything, and report the instances that code would
break. Run it before deploying new code (a CI or pre-deploy gate).

MODULE[:ATTR] is what 'perdure worker' takes: a module, a list of handlers,
a dict with "orchestrations", or a factory (see 'perdure worker --help').
Instances of an orchestration name or version the code does not register
are skipped: a runtime with that code would leave them to one that has it.

Exit status: 0 if no instance would break, 1 if one would, 2 if the check
could not run (bad arguments, unimportable code, unreachable storage).
"""

#: Statuses of the instances a deploy can break (``Suspended`` once the
#: provider contract has it).
LIVE_STATUSES: tuple[str, ...] = tuple(
    s for s in ("Running", "Suspended") if s in get_args(InstanceStatus)
)

#: First ``list_instances`` limit; grown until a listing comes back short.
PAGE = 1000

# Longest reason printed on one line (the JSON output keeps all of it).
_MAX_REASON = 500


class CheckAborted(CliUsageError):
    """The check could not run (exit status 2, one line, no traceback)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the checked code would do with one live instance.

    Attributes:
        instance_id: The instance.
        name: Its orchestration name (from its history once it started).
        version: Its orchestration version (``""``: not pinned yet).
        status: Its status (``Running`` or ``Suspended``).
        outcome: ``ok``, ``breaks`` or ``skipped``.
        reason: Why it breaks or is skipped (``""`` when ok).
    """

    instance_id: str
    name: str
    version: str
    status: str
    outcome: Literal["ok", "breaks", "skipped"]
    reason: str = ""

    def to_json(self) -> dict[str, str]:
        """The JSON form ``perdure check --json`` prints."""
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
        }


async def run_check(target: str, storage: str | Provider, *, as_json: bool) -> int:
    """Check *target*'s code against *storage*; print the report.

    Returns:
        The exit status: 1 if an instance would break, else 0.

    Raises:
        CheckAborted: The code cannot be loaded or the storage cannot be
            read.
    """
    registry = _registry(target)
    try:
        provider = open_provider(storage)
        await provider.open()
    except (PerdureError, ValueError, TypeError, OSError) as exc:
        raise CheckAborted(f"cannot open the storage: {_one_line(exc)}") from None
    try:
        verdicts = await check_instances(provider, registry)
    except (PerdureError, OSError) as exc:
        raise CheckAborted(f"reading the storage failed: {_one_line(exc)}") from None
    finally:
        await provider.close()
    print(_json_report(verdicts) if as_json else _text_report(verdicts, target))
    return 1 if any(v.outcome == "breaks" for v in verdicts) else 0


def _registry(target: str) -> Registry:
    try:
        orchestrations, activities = load_handlers(target)
    except CliError as exc:
        raise CheckAborted(_one_line(exc)) from None
    except Exception as exc:  # raised by the module's own code on import
        error = ErrorInfo.from_exception(exc)
        raise CheckAborted(f"cannot import {target!r}: {_one_line(error)}") from None
    if not orchestrations:
        raise CheckAborted(f"{target!r} names no orchestrations")
    try:
        return Registry(orchestrations, activities)
    except (TypeError, ValueError) as exc:
        raise CheckAborted(f"{target!r}: {_one_line(exc)}") from None


async def live_instances(provider: Provider) -> list[InstanceRecord]:
    """Every instance whose status is in `LIVE_STATUSES`, one row each.

    ``list_instances`` has a limit and no cursor, so the limit grows until a
    listing comes back shorter than asked: then it holds every row.
    """
    found: dict[str, InstanceRecord] = {}
    for status in LIVE_STATUSES:
        limit = PAGE
        while True:
            rows = await provider.list_instances(
                status=cast("InstanceStatus", status), limit=limit
            )
            if len(rows) < limit:
                break
            limit *= 4
        for row in rows:
            found.setdefault(row.instance_id, row)
    return list(found.values())


async def check_instances(provider: Provider, registry: Registry) -> list[Verdict]:
    """Replay every live instance of *provider* against *registry*."""
    verdicts = []
    for record in await live_instances(provider):
        rows = await provider.read_history(record.instance_id, record.execution_id)
        verdicts.append(verdict(registry, record, rows))
    return verdicts


def verdict(registry: Registry, record: InstanceRecord, rows: Sequence[str]) -> Verdict:
    """Replay one instance's stored history (*rows*) against *registry*."""
    name, version = record.name, record.version
    try:
        events = [h.event_from_json(row) for row in rows]
    except Exception as exc:
        return _verdict(record, name, version, "breaks", _reason(exc, None))
    start = events[0] if events else None
    if isinstance(start, h.OrchestrationStarted):
        name, version = start.name, start.version
    try:
        # What the dispatcher resolves (an unpinned version is the latest).
        registry.orchestration(name, version or None)
    except HandlerNotFound:
        return _verdict(record, name, version, "skipped", _skip_reason(registry, name))
    if not events:
        return _verdict(record, name, version, "ok")  # starts on this code
    driver: Driver | None = None
    try:
        if not isinstance(start, h.OrchestrationStarted):
            raise NondeterminismError(
                "corrupted history: it does not begin with OrchestrationStarted"
            )
        driver = build_driver(registry, record.instance_id, record.execution_id, start)
        # A live instance whose history ends Failed waits for its rewind turn.
        rewind = plan_rewind(events) is not None
        driver.replay(events, rewind=rewind)
    except Exception as exc:
        return _verdict(record, name, version, "breaks", _reason(exc, driver))
    outcome = driver.outcome
    if rewind and outcome is not None and outcome.status == "Failed":
        reason = f"rewinding it fails again: {outcome.error}"
        return _verdict(record, name, version, "breaks", reason)
    return _verdict(record, name, version, "ok")


def _verdict(
    record: InstanceRecord,
    name: str,
    version: str,
    outcome: Literal["ok", "breaks", "skipped"],
    reason: str = "",
) -> Verdict:
    return Verdict(record.instance_id, name, version, record.status, outcome, reason)


def _reason(exc: Exception, driver: Driver | None) -> str:
    reason = str(ErrorInfo.from_exception(exc))
    outcome = driver.outcome if driver is not None else None
    if outcome is not None and outcome.status == "Failed" and outcome.error:
        # A live history ends running: the code raising is what changed.
        reason += f"; the code raised {outcome.error}"
    return reason


def _skip_reason(registry: Registry, name: str) -> str:
    versions = registry.orchestrations.get(name)
    if not versions:
        return f"this code does not register orchestration {name!r}"
    return f"this code registers only version(s) {', '.join(sorted(versions))}"


def _text_report(verdicts: list[Verdict], target: str) -> str:
    lines = []
    for v in verdicts:
        if v.outcome == "breaks":
            reason = v.reason
            if len(reason) > _MAX_REASON:
                reason = reason[:_MAX_REASON] + "..."
            lines.append(
                f"would break: {v.instance_id} ({v.name} {v.version or '-'}, "
                f"{v.status}): {reason}"
            )
    skipped = Counter(
        (v.name, v.version, v.reason) for v in verdicts if v.outcome == "skipped"
    )
    for (name, version, reason), count in sorted(skipped.items()):
        lines.append(
            f"skipped {count} instance(s) of {name} {version or '-'}: {reason}; "
            "they wait for a runtime that has it"
        )
    counts = Counter(v.outcome for v in verdicts)
    if counts["breaks"]:
        lines.append(
            "to deploy this code, keep the old path for these instances "
            "(ctx.patched, or the old version registered side by side): see "
            "'Deploying new versions' in the docs"
        )
    lines.append(
        f"checked {len(verdicts)} instance(s) ({', '.join(LIVE_STATUSES)}) "
        f"against {target}: {counts['ok']} ok, {counts['breaks']} would break, "
        f"{counts['skipped']} skipped"
    )
    return "\n".join(printable(" ".join(line.split())) for line in lines)


def _json_report(verdicts: list[Verdict]) -> str:
    counts = Counter(v.outcome for v in verdicts)
    report: dict[str, Any] = {
        "checked": len(verdicts),
        "ok": counts["ok"],
        "would_break": [v.to_json() for v in verdicts if v.outcome == "breaks"],
        "skipped": [v.to_json() for v in verdicts if v.outcome == "skipped"],
    }
    return json.dumps(report, indent=2)


def _one_line(exc: BaseException | ErrorInfo) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
