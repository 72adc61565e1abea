"""An execution's scope tree as data (JSON values), for the web UI and tools.

`history_tree` builds the same model as `perdure._tree.render_history` (the
same scopes, winners, cancelled scopes and shielded work, from the same
`_Builder`) and returns it as nested dicts and lists instead of text, with a
flat timeline of the work: when each piece was scheduled and when it
completed, failed or was cancelled.

Statuses of a scope: ``running``, ``done``, ``winner``, ``failed``,
``cancelled``. Statuses of a work item: ``pending``, ``completed``,
``winner``, ``failed``, ``cancelled``, ``note`` (recorded, nothing to wait
for), ``buffered`` (an event nobody waited for), ``requested`` (a client's
cancel request) and ``rewound`` (a failure voided by ``Client.rewind``).
Payloads (inputs, results, event data) are the JSON values the history
holds; labels are short texts (cut payloads), as the text tree shows them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._core import _history as h
from ._errors import ErrorInfo
from ._tree import (
    _FAILURE_TYPES,
    _NOTE_TYPES,
    _ancestry,
    _Builder,
    _describe,
    _pending,
    _Scope,
    _shielded,
    _Work,
)

__all__ = ["history_tree"]

Json = dict[str, Any]


def history_tree(events: Sequence[h.Event]) -> Json:
    """Return one execution's history as a scope tree and a timeline.

    Args:
        events: The execution's events in history order (as returned by
            `Client.get_history`).

    Returns:
        A JSON-ready dict: ``orchestration`` (``name``, ``version``,
        ``input``, ``parent``, ``values`` carried over by a continue-as-new;
        ``None`` for an empty history), ``status``
        and ``reason`` of the execution, ``root`` (the scope ``0``: a node
        with ``kind`` ``"scope"``, its ``path``, ``status``, ``reason``,
        ``shielded`` and ``items``, each a scope or a work node), ``end``
        (the terminal event's ``event_id``, ``output`` or ``error``; ``None``
        while running), ``started_at``/``ended_at`` (Unix seconds) and
        ``timeline``: every scheduled piece of work, in event order, with
        its ``scheduled_at`` and ``ended_at`` (``None`` while pending).
    """
    builder = _Builder()
    builder.build(events)
    return _Converter(builder).convert(events)


class _Converter:
    def __init__(self, builder: _Builder) -> None:
        self.b = builder
        self.timeline: list[Json] = []

    def convert(self, events: Sequence[h.Event]) -> Json:
        start = self.b.start
        end = self.b.terminal
        status, reason = self._root_status()
        root = self._scope(self.b.scopes["0"])
        root["status"], root["reason"] = status, reason
        self.timeline.sort(key=lambda item: item["event_id"])
        return {
            "orchestration": None
            if start is None
            else {
                "name": start.name,
                "version": start.version,
                "input": start.input,
                "parent": start.parent,
                "values": start.values,
            },
            "status": status,
            "reason": reason,
            "root": root,
            "end": None if end is None else _terminal(end),
            "started_at": events[0].timestamp if events else None,
            "ended_at": None if end is None else end.timestamp,
            "timeline": self.timeline,
        }

    def _root_status(self) -> tuple[str, str]:
        end = self.b.terminal
        if end is None:
            return "running", ""
        if isinstance(end, h.OrchestrationFailed):
            return "failed", ""
        if isinstance(end, h.OrchestrationCancelled):
            return "cancelled", end.reason
        return "done", ""

    def _scope(self, scope: _Scope) -> Json:
        status, reason = self._scope_status(scope)
        items = [
            self._scope(item) if isinstance(item, _Scope) else self._work(item)
            for item in scope.items
        ]
        return {
            "kind": "scope",
            "path": scope.path,
            "status": status,
            "reason": reason,
            "shielded": scope.path != "0" and _shielded(scope),
            "items": items,
        }

    def _scope_status(self, scope: _Scope) -> tuple[str, str]:
        # The same verdicts as _Renderer._scope_status, as values.
        cancelled = [p for p in _ancestry(scope.path) if p in self.b.cancelled_scopes]
        if _shielded(scope):
            cancelled = [p for p in cancelled if p == scope.path]
        if cancelled:
            return "cancelled", self.b.scopes[cancelled[0]].cancel_reason or ""
        if scope.path in self.b.running_scopes:
            return "running", ""
        own = [
            item
            for item in scope.items
            if isinstance(item, _Work) and not isinstance(item.event, _NOTE_TYPES)
        ]
        if own and isinstance(own[-1].outcome, _FAILURE_TYPES):
            return "failed", ""
        return ("winner" if scope.winner else "done"), ""

    def _work(self, work: _Work) -> Json:
        event = work.event
        node: Json = {
            "kind": "work",
            "event_id": event.event_id,
            "type": event.kind,
            "label": _describe(event),
            "shielded": bool(getattr(event, "shielded", False)),
            "scope": work.scope,
            "status": _work_status(work),
            "reason": "",
            "outcome_event_id": None,
            "cancel_event_id": None,
            "ignored_event_id": None,
            "scheduled_at": event.timestamp,
            "ended_at": None,
        }
        for key in ("name", "input", "instance_id"):
            if hasattr(event, key):
                node[key] = getattr(event, key)
        if isinstance(event, h.EventRaised):
            node["data"] = event.data
        if isinstance(event, h.OrchestrationCancelRequested):
            node["reason"] = event.reason
        if isinstance(event, h.OrchestrationFailed):
            node["error"] = ErrorInfo.from_json(event.error).to_json()
            node["rewound_by"] = self.b.rewound.get(event.event_id)
        if work.cancel is not None:
            node["cancel_event_id"] = work.cancel.event_id
            node["reason"] = str(getattr(work.cancel, "reason", ""))
            node["ended_at"] = work.cancel.timestamp
            if work.ignored is not None:
                node["ignored_event_id"] = work.ignored.event_id
        out = work.outcome
        if out is not None and work.cancel is None:
            node["outcome_event_id"] = out.event_id
            node["ended_at"] = _when(out)
            if isinstance(out, _FAILURE_TYPES):
                node["error"] = ErrorInfo.from_json(out.error).to_json()
            elif isinstance(out, h.EventRaised):
                node["result"] = out.data
            elif not isinstance(out, h.TimerFired):
                node["result"] = getattr(out, "result", None)
        if type(event) in h.SCHEDULING_TYPES:
            self.timeline.append(
                {
                    key: node[key]
                    for key in (
                        "event_id",
                        "type",
                        "label",
                        "scope",
                        "status",
                        "shielded",
                        "scheduled_at",
                        "ended_at",
                    )
                }
            )
        return node


def _work_status(work: _Work) -> str:
    event = work.event
    if isinstance(event, h.OrchestrationCancelRequested):
        return "requested"
    if isinstance(event, h.EventRaised):
        return "buffered"
    if isinstance(event, h.OrchestrationFailed):
        return "rewound"
    if isinstance(event, _NOTE_TYPES):
        return "note"
    if work.cancel is not None:
        return "cancelled"
    if _pending(work) or work.outcome is None:
        return "pending"
    if isinstance(work.outcome, _FAILURE_TYPES):
        return "failed"
    return "winner" if work.winner else "completed"


def _when(event: h.Event) -> float:
    """When the outcome happened (a completion may be recorded later)."""
    occurred = getattr(event, "occurred_at", None)
    return float(occurred) if occurred is not None else event.timestamp


def _terminal(end: h.Event) -> Json:
    data: Json = {"event_id": end.event_id, "type": end.kind}
    if isinstance(end, h.OrchestrationCompleted):
        data["output"] = end.output
    elif isinstance(end, h.OrchestrationFailed):
        data["error"] = ErrorInfo.from_json(end.error).to_json()
    elif isinstance(end, h.OrchestrationCancelled):
        data["reason"] = end.reason
    elif isinstance(end, h.OrchestrationContinuedAsNew):
        data["input"] = end.input
    return data
