"""Render an execution's history as a tree of task scopes.

`render_history` is a pure function over a list of events (no storage): the
root scope ``0`` lists the orchestration's own work in event order, and each
task scope (``0.1``, ``0.1.2``, ...) is nested where its first work appears.
Every line shows the work, its outcome and the event ids involved; select
winners are marked ``✓ winner`` and cancelled losers ``✗ cancelled``. A
patch marker (``ctx.patched``) is shown in the scope of the task that asked.
A failure that ``Client.rewind`` voided is shown where it happened, marked
``↺ rewound``; the cancellations it made are left out (that work went on).
Work started inside ``ctx.shield`` is marked ``[shielded]``: in a cancelled
scope it is the compensation that ran on after the cancellation.

History does not record which task a cancellation was aimed at, only the
work it cancelled (DESIGN §4.3), so the cancelled scope is inferred: the
cause of a cancellation is the latest earlier event that resolved live work
(or a client's cancel request), and the cancelled scope is the outermost
scope holding the cancelled work but not that cause. The cause's side of a
``lost select`` (or ``timed out``: ``ctx.timeout``) cancellation is the
winner.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._core import _history as h
from ._core._rewind import voided_ids
from ._errors import ErrorInfo

__all__ = ["printable", "render_history"]

# C0 and C1 controls, DEL, and bidirectional overrides: an instance id or a
# name holding them could rewrite an operator's terminal.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    r"""Return *text* with control characters escaped (``\x1b``, ``\u202e``)."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_CANCEL_TYPES = (
    h.ActivityCancelRequested,
    h.TimerCancelled,
    h.EventWaitCancelled,
    h.SubOrchestrationCancelRequested,
)
_FAILURE_TYPES = (h.ActivityFailed, h.SubOrchestrationFailed)
# Recorded by code, but nothing to wait for: never pending, outcome ✓.
_NOTE_TYPES = (
    h.OrchestrationChained,
    h.CustomStatusUpdated,
    h.PatchApplied,
    h.StateValueSet,
    h.StateValueCleared,
)
_UNICODE = {
    "ok": "✓",
    "bad": "✗",
    "wait": "…",
    "arrow": "→",
    "tee": "├── ",
    "last": "└── ",
    "pipe": "│   ",
    "gap": "    ",
    "back": "↺",
}
_ASCII = {
    "ok": "OK",
    "bad": "X",
    "wait": "...",
    "arrow": "->",
    "tee": "|-- ",
    "last": "`-- ",
    "pipe": "|   ",
    "gap": "    ",
    "back": "<-",
}


@dataclass(slots=True)
class _Work:
    """One scheduled piece of work (or a root-level note) and what became of it."""

    event: h.Event
    scope: str
    outcome: h.Event | None = None  # completion, or the EventRaised a wait took
    cancel: h.Event | None = None
    ignored: h.Event | None = None  # completion recorded after the cancellation
    winner: bool = False

    @property
    def first(self) -> int:
        return self.event.event_id


@dataclass(slots=True)
class _Scope:
    path: str
    items: list[_Work | _Scope] = field(default_factory=list)
    cancel_reason: str | None = None
    winner: bool = False

    @property
    def first(self) -> int:
        return min((item.first for item in self.items), default=0)


def _ancestry(path: str) -> list[str]:
    """*path* and every scope above it (``0.1.2`` -> ``0``, ``0.1``, ``0.1.2``)."""
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _common(a: str, b: str) -> str:
    out: list[str] = []
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y:
            break
        out.append(x)
    return ".".join(out)


def _child_toward(ancestor: str, path: str) -> str:
    depth = len(ancestor.split(".")) + 1
    return ".".join(path.split(".")[:depth])


class _Builder:
    """Folds the events into scopes, work items and cancellation verdicts."""

    def __init__(self) -> None:
        self.scopes: dict[str, _Scope] = {"0": _Scope("0")}
        self.work: dict[int, _Work] = {}
        self.start: h.OrchestrationStarted | None = None
        self.terminal: h.Event | None = None
        self.notes: list[_Work] = []
        self._open_waits: dict[str, deque[_Work]] = {}
        self._buffered: dict[str, deque[_Work]] = {}
        self.cancelled_scopes: set[str] = set()
        self.running_scopes: set[str] = set()
        self._winner_scopes: set[str] = set()
        # Events that resolved live work, in history order: the candidates
        # for the cause of a later cancellation (None: a client's request).
        self._resolutions: list[_Work | None] = []
        # Voided failure -> the ExecutionRewound event that voided it.
        self.rewound: dict[int, int] = {}

    def scope(self, path: str) -> _Scope:
        found = self.scopes.get(path)
        if found is None:
            found = self.scopes[path] = _Scope(path)
            if "." in path:
                self.scope(_parent(path)).items.append(found)
        return found

    def build(self, events: Sequence[h.Event]) -> None:
        voided = voided_ids(events)
        for event in events:
            if isinstance(event, h.ExecutionRewound) and event.source_event_id:
                self.rewound[event.source_event_id] = event.event_id
        for event in events:
            if event.event_id in voided or isinstance(event, h.ExecutionRewound):
                if isinstance(event, h.OrchestrationFailed):
                    self.notes.append(_Work(event, "0"))
                continue
            if isinstance(event, h.OrchestrationStarted):
                self.start = event
            elif type(event) in h.SCHEDULING_TYPES or event.role == "marker":
                self._schedule(event)
            elif type(event) in h.COMPLETION_TYPES:
                work = self.work.get(event.source_event_id or 0)
                if work is not None and work.cancel is not None:
                    work.ignored = event
                elif work is not None:
                    work.outcome = event
                    self._resolutions.append(work)
            elif isinstance(event, _CANCEL_TYPES):
                self._cancel(event)
            elif isinstance(event, h.EventRaised):
                self._raised(event)
            elif isinstance(event, h.OrchestrationCancelRequested):
                self.notes.append(_Work(event, "0"))
                self._resolutions.append(None)
            elif event.role == "terminal":
                self.terminal = event
        for path in self._winner_scopes:
            self.scope(path).winner = True
        for work in self.work.values():
            if _pending(work):
                self.running_scopes.update(_ancestry(work.scope))
        root = self.scopes["0"]
        root.items.extend(self.notes)
        for buffered in self._buffered.values():
            root.items.extend(buffered)
        for scope in self.scopes.values():
            scope.items.sort(key=lambda item: item.first)

    def _schedule(self, event: h.Event) -> None:
        work = _Work(event, str(getattr(event, "scope", "0")))
        self.work[event.event_id] = work
        self.scope(work.scope).items.append(work)
        if isinstance(event, h.EventWaitStarted):
            buffered = self._buffered.get(event.name)
            if buffered:
                work.outcome = buffered.popleft().event
            else:
                self._open_waits.setdefault(event.name, deque()).append(work)

    def _raised(self, event: h.EventRaised) -> None:
        waits = self._open_waits.get(event.name)
        while waits:
            wait = waits.popleft()
            if wait.cancel is None:
                wait.outcome = event
                self._resolutions.append(wait)
                return
        self._buffered.setdefault(event.name, deque()).append(_Work(event, "0"))

    def _cancel(self, event: h.Event) -> None:
        work = self.work.get(event.source_event_id or 0)
        if work is None:
            return
        work.cancel = event
        if work.outcome is not None:
            # Its completion came in the same turn, after the cancellation
            # had happened in memory: the driver ignored it.
            work.ignored, work.outcome = work.outcome, None
        reason = str(getattr(event, "reason", ""))
        cause = self._cause()
        if cause is None:  # the instance itself was cancelled
            loser: str | None = "0"
        else:
            common = _common(work.scope, cause.scope)
            loser = None if common == work.scope else _child_toward(common, work.scope)
            if reason in ("lost select", "timed out") and cause.event.event_id:
                if cause.scope == common:
                    cause.winner = True
                else:
                    self._winner_scopes.add(_child_toward(common, cause.scope))
        if loser is not None and loser not in self.cancelled_scopes:
            self.cancelled_scopes.add(loser)
            self.scope(loser).cancel_reason = reason

    def _cause(self) -> _Work | None:
        """The live work whose resolution led to a cancellation (None: client)."""
        for work in reversed(self._resolutions):
            if work is None or work.cancel is None:
                return work
        # Nothing resolved yet (e.g. a select over finished futures in the
        # first turn): the orchestration body, in the root scope, did it.
        return _Work(h.Event(event_id=0, timestamp=0.0), "0")


def summarize(value: Any, limit: int = 60) -> str:
    """Compact JSON text of *value*, cut to about *limit* characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Renderer:
    def __init__(self, builder: _Builder, glyphs: dict[str, str]) -> None:
        self.b = builder
        self.g = glyphs
        self.lines: list[str] = []

    def render(self, title: str | None) -> str:
        start = self.b.start
        if title:
            self.lines.append(title)
        if start is not None:
            line = f"orchestration {start.name} {start.version}"
            if start.input is not None:
                line += f"  input {summarize(start.input, 70)}"
            if start.parent:
                line += f"  parent {summarize(start.parent)}"
            if start.values:  # carried over by a continue-as-new
                line += f"  values {summarize(start.values, 70)}"
            self.lines.append(line)
        root = self.b.scopes["0"]
        self.lines.append(f"scope 0  {self._root_status()}")
        self._children(root, "")
        self.lines.append(self._terminal())
        return "\n".join(self.lines) + "\n"

    def _children(self, scope: _Scope, prefix: str) -> None:
        for index, item in enumerate(scope.items):
            last = index == len(scope.items) - 1
            branch = prefix + (self.g["last"] if last else self.g["tee"])
            if isinstance(item, _Scope):
                mark = " [shielded]" if _shielded(item) else ""
                self.lines.append(
                    f"{branch}task {item.path}{mark}  {self._scope_status(item)}"
                )
                self._children(
                    item, prefix + (self.g["gap"] if last else self.g["pipe"])
                )
            else:
                self.lines.append(f"{branch}#{item.event.event_id} {self._work(item)}")

    def _root_status(self) -> str:
        g = self.g
        end = self.b.terminal
        if end is None:
            return f"{g['wait']} running"
        if isinstance(end, h.OrchestrationFailed):
            return f"{g['bad']} failed"
        if isinstance(end, h.OrchestrationCancelled):
            return f"{g['bad']} cancelled" + _reason(end.reason)
        return f"{g['ok']} done"

    def _scope_status(self, scope: _Scope) -> str:
        g = self.g
        cancelled = [p for p in _ancestry(scope.path) if p in self.b.cancelled_scopes]
        if _shielded(scope):
            # Started inside a shield: its ancestors' cancellation passed it by.
            cancelled = [p for p in cancelled if p == scope.path]
        if cancelled:
            reason = self.b.scopes[cancelled[0]].cancel_reason
            return f"{g['bad']} cancelled" + (f": {reason}" if reason else "")
        if scope.path in self.b.running_scopes:
            return f"{g['wait']} running"
        own = [
            item
            for item in scope.items
            if isinstance(item, _Work) and not isinstance(item.event, _NOTE_TYPES)
        ]
        if own and isinstance(own[-1].outcome, _FAILURE_TYPES):
            return f"{g['bad']} failed"
        return f"{g['ok']} winner" if scope.winner else f"{g['ok']} done"

    def _work(self, work: _Work) -> str:
        # Started inside ctx.shield: it ran on although its scope was
        # cancelled (DESIGN §8).
        shield = " [shielded]" if getattr(work.event, "shielded", False) else ""
        return f"{_describe(work.event)}{shield}  {self._outcome(work)}"

    def _outcome(self, work: _Work) -> str:
        g = self.g
        event = work.event
        if isinstance(event, h.OrchestrationCancelRequested):
            return _reason(event.reason).removeprefix(": ")
        if isinstance(event, h.EventRaised):
            return f"buffered {summarize(event.data)} (not consumed)"
        if isinstance(event, h.PatchApplied):
            return f"{g['ok']} new code"
        if isinstance(event, h.OrchestrationFailed):
            marker = self.b.rewound.get(event.event_id)
            return f"{g['back']} rewound" + (f" (#{marker})" if marker else "")
        if isinstance(event, _NOTE_TYPES):
            return g["ok"]
        if work.cancel is not None:
            text = f"{g['bad']} cancelled{_reason(getattr(work.cancel, 'reason', ''))}"
            text += f" (#{work.cancel.event_id})"
            if work.ignored is not None:
                text += f", late result ignored (#{work.ignored.event_id})"
            return text
        out = work.outcome
        if out is None:
            return f"{g['wait']} pending"
        mark = f"{g['ok']} winner" if work.winner else g["ok"]
        if isinstance(out, _FAILURE_TYPES):
            return (
                f"{g['bad']} failed: {ErrorInfo.from_json(out.error)} (#{out.event_id})"
            )
        if isinstance(out, h.TimerFired):
            return f"{mark}{',' if work.winner else ''} fired (#{out.event_id})"
        if isinstance(out, h.EventRaised):
            return f"{mark} {g['arrow']} {summarize(out.data)} (#{out.event_id})"
        value = getattr(out, "result", None)
        return f"{mark} {g['arrow']} {summarize(value)} (#{out.event_id})"

    def _terminal(self) -> str:
        g = self.g
        end = self.b.terminal
        if end is None:
            return f"{g['wait']} running"
        head = f"#{end.event_id} "
        if isinstance(end, h.OrchestrationCompleted):
            return (
                head + f"{g['ok']} completed {g['arrow']} {summarize(end.output, 70)}"
            )
        if isinstance(end, h.OrchestrationFailed):
            return head + f"{g['bad']} failed: {ErrorInfo.from_json(end.error)}"
        if isinstance(end, h.OrchestrationCancelled):
            return head + f"{g['bad']} cancelled" + _reason(end.reason)
        assert isinstance(end, h.OrchestrationContinuedAsNew)
        return head + f"continued as new with {summarize(end.input, 70)}"


def _shielded(scope: _Scope) -> bool:
    """Whether all the scope's own work was marked shielded (compensation)."""
    own = [
        item.event
        for item in scope.items
        if isinstance(item, _Work) and not isinstance(item.event, _NOTE_TYPES)
    ]
    return bool(own) and all(getattr(e, "shielded", False) for e in own)


def _pending(work: _Work) -> bool:
    if isinstance(work.event, _NOTE_TYPES):
        return False
    return work.outcome is None and work.cancel is None


def _reason(reason: str) -> str:
    return f": {reason}" if reason else ""


def _arg(value: Any) -> str:
    return "" if value is None else summarize(value, 40)


def _describe(event: h.Event) -> str:
    if isinstance(event, h.ActivityScheduled):
        return f"activity {event.name}({_arg(event.input)})"
    if isinstance(event, h.TimerCreated):
        return f"timer {round(max(event.fire_at - event.timestamp, 0.0), 3):g} s"
    if isinstance(event, h.EventWaitStarted):
        return f"wait for event {event.name!r}"
    if isinstance(event, h.SubOrchestrationScheduled):
        inp = _arg(event.input)
        return f"sub-orchestration {event.name}({inp}) [{event.instance_id}]"
    if isinstance(event, h.OrchestrationChained):
        inp = _arg(event.input)
        return f"started detached {event.name}({inp}) [{event.instance_id}]"
    if isinstance(event, h.CustomStatusUpdated):
        return f"custom status = {summarize(event.value, 40)}"
    if isinstance(event, h.PatchApplied):
        return f"patched {event.patch_id!r}"
    if isinstance(event, h.StateValueSet):
        return f"set value {event.key!r} = {summarize(event.value, 40)}"
    if isinstance(event, h.StateValueCleared):
        return f"cleared value {event.key!r}"
    if isinstance(event, h.EventRaised):
        return f"event {event.name!r} raised"
    if isinstance(event, h.OrchestrationCancelRequested):
        return "instance cancel requested"
    if isinstance(event, h.OrchestrationFailed):
        return f"failed: {ErrorInfo.from_json(event.error)}"
    return event.type


def render_history(
    events: Sequence[h.Event], *, title: str | None = None, ascii: bool = False
) -> str:
    """Render one execution's history as a tree of task scopes.

    Args:
        events: The execution's events in history order (as returned by
            `Client.get_history`).
        title: Optional first line (e.g. the instance id).
        ascii: Use ASCII marks and branches instead of Unicode.

    Returns:
        The tree as text, one line per scope, work item or note, ending with
        the execution's outcome (or ``running``) and a newline.
    """
    builder = _Builder()
    builder.build(events)
    text = _Renderer(builder, _ASCII if ascii else _UNICODE).render(title)
    return "\n".join(printable(line) for line in text.split("\n"))
