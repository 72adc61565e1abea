"""OpenTelemetry spans and metrics of the engine (loaded by `._telemetry`).

Spans (tracer ``perdure``), all in the trace of the request that started
the instance: the client's start span injects its context (the global
propagator: W3C ``traceparent``/``tracestate`` by default) into the start
message, the first turn records it in ``OrchestrationStarted.trace``, and
every later turn, in any process, is a child of it. A turn's own context
goes with the activity work items and children's start messages it sends,
so their spans are its children. An instance started outside any trace
records its first turn's context instead.

* ``perdure.start``: `Client.start_orchestration` (and a signal-with-start).
* ``perdure.turn``: one orchestration turn, replay included.
* ``perdure.activity``: one activity attempt; current while the activity
  runs, so spans made by its code are children of it.

Metrics (meter ``perdure``): ``perdure.turns``, ``perdure.turn.duration``,
``perdure.cache.hits``, ``perdure.replays``, ``perdure.replayed_events``,
``perdure.activity.attempts``, ``perdure.activity.duration`` and the gauge
``perdure.queue.depth``. docs/observability.md is the reference.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context, metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ._core import _history as h
from ._registry import name_of
from ._turn import Cached, Fresh

if TYPE_CHECKING:
    from ._turn import Plan, TurnOutput
    from .providers._base import ActivityItem, OrchestrationItem

__all__ = ["ActivitySpan", "Carrier", "Telemetry", "TurnSpan"]

#: A propagated trace context (``{"traceparent": ..., "tracestate": ...}``).
Carrier = dict[str, str]

_OUTCOMES = {
    "Completed": "completed",
    "Failed": "failed",
    "Cancelled": "cancelled",
    "ContinuedAsNew": "continued_as_new",
    "Suspended": "suspended",
}
# Cancellation reasons remembered for activity spans (the oldest go first:
# forgetting one only reports "cancelled" instead of "lost_select").
_REASONS_MAX = 10_000


class Telemetry:
    """Creates the engine's spans and records its metrics.

    Args:
        tracer_provider: Tracer provider; None: the global one.
        meter_provider: Meter provider; None: the global one.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer("perdure", tracer_provider=tracer_provider)
        meter = metrics.get_meter("perdure", meter_provider=meter_provider)
        self.turns = meter.create_counter(
            "perdure.turns", "{turn}", "Orchestration turns run"
        )
        self.turn_duration = meter.create_histogram(
            "perdure.turn.duration", "s", "Time to run a turn, replay included"
        )
        self.cache_hits = meter.create_counter(
            "perdure.cache.hits", "{turn}", "Turns run on a cached live instance"
        )
        self.replays = meter.create_counter(
            "perdure.replays", "{turn}", "Turns that replayed the history first"
        )
        self.replayed_events = meter.create_counter(
            "perdure.replayed_events", "{event}", "History events replayed"
        )
        self.attempts = meter.create_counter(
            "perdure.activity.attempts", "{attempt}", "Activity attempts, by outcome"
        )
        self.activity_duration = meter.create_histogram(
            "perdure.activity.duration", "s", "Time of an activity attempt"
        )
        meter.create_observable_gauge(
            "perdure.queue.depth",
            [self._observe_depth],
            "{item}",
            "Work this process holds: instances fetched and not yet turned, "
            "activities leased and not yet finished",
        )
        self._lock = threading.Lock()
        self._depth = {"orchestrations": 0, "activities": 0}
        self._reasons: OrderedDict[tuple[str, int, int], str] = OrderedDict()

    # ---------------------------------------------------------------- client
    def start(self, instance_id: str, name: str | Callable[..., Any]) -> Any:
        """The ``perdure.start`` span, current while the start is written."""
        try:
            orch = name_of(name)
        except TypeError:
            orch = repr(name)  # the start raises for it inside the span
        attributes = {"perdure.instance_id": instance_id, "perdure.orchestration": orch}
        return self.tracer.start_as_current_span(
            "perdure.start", kind=SpanKind.PRODUCER, attributes=attributes
        )

    def carrier(self) -> Carrier | None:
        """The current trace context to store, or None outside any trace."""
        carrier: Carrier = {}
        propagate.inject(carrier)
        return carrier or None

    # ----------------------------------------------------------- dispatcher
    def turn(
        self, item: OrchestrationItem, step: Plan, events: list[h.Event]
    ) -> TurnSpan:
        """Begin the span of a turn planned as *step* (`._turn.plan`)."""
        record = item.instance
        exe = record.execution_id
        replayed = 0
        start: h.OrchestrationStarted | Any = None
        if isinstance(step, Fresh):
            start, how, exe = step.start, "fresh", step.start.execution_id
        elif isinstance(step, Cached):
            start, how = step.driver.started, "cache_hit"
        else:
            how, replayed = "replay", len(events)
            if events and isinstance(events[0], h.OrchestrationStarted):
                start = events[0]
        name = start.name if start is not None else record.name
        stored = start.trace if start is not None else None
        # No stored context: a root span, never the dispatcher's own context.
        parent = propagate.extract(stored) if stored else otel_context.Context()
        span = self.tracer.start_span(
            "perdure.turn",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "perdure.instance_id": record.instance_id,
                "perdure.orchestration": name,
                "perdure.execution_id": exe,
                "perdure.replayed": replayed,
                "perdure.cache_hit": how == "cache_hit",
            },
        )
        return TurnSpan(self, span, name, how, replayed)

    def depth(self, queue: str, change: int) -> None:
        """Count *change* more items of *queue* held by this process."""
        with self._lock:
            self._depth[queue] += change

    def _observe_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            depth = list(self._depth.items())
        return [Observation(value, {"perdure.queue": name}) for name, value in depth]

    def _note_cancels(
        self, instance_id: str, execution_id: int, events: list[h.Event]
    ) -> None:
        for event in events:
            if type(event) is h.ActivityCancelRequested and event.source_event_id:
                key = (instance_id, execution_id, event.source_event_id)
                with self._lock:
                    self._reasons[key] = event.reason
                    while len(self._reasons) > _REASONS_MAX:
                        self._reasons.popitem(last=False)

    # --------------------------------------------------------------- worker
    def activity(self, item: ActivityItem, body: dict[str, Any]) -> ActivitySpan:
        """The span of one attempt of *item* (its work body decoded)."""
        stored = body.get("trace")
        parent = propagate.extract(stored) if stored else otel_context.Context()
        attributes: dict[str, Any] = {
            "perdure.instance_id": item.instance_id,
            "perdure.execution_id": item.execution_id,
            "perdure.event_id": item.event_id,
            "perdure.activity": item.name,
            "perdure.attempt": item.attempt,
        }
        scope = body.get("scope")
        if isinstance(scope, str):
            attributes["perdure.scope"] = scope
        span = self.tracer.start_span(
            "perdure.activity",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        return ActivitySpan(self, span, item)

    def error(self, exc: BaseException) -> None:
        """Record *exc* on the current span (a failed activity attempt's)."""
        trace.get_current_span().record_exception(exc)

    def _cancel_reason(self, item: ActivityItem) -> str:
        key = (item.instance_id, item.execution_id, item.event_id)
        with self._lock:
            reason = self._reasons.pop(key, "")
        return "lost_select" if reason == "lost select" else "cancelled"


class TurnSpan:
    """A turn's span: `done` with its output, or ended by an exception.

    Attributes:
        carrier: The span's context, for the work the turn sends (None when
            it is not recorded).
    """

    __slots__ = ("_began", "_how", "_name", "_replayed", "_span", "_tel", "carrier")

    def __init__(
        self, tel: Telemetry, span: Span, name: str, how: str, replayed: int
    ) -> None:
        self._tel = tel
        self._span = span
        self._name = name
        self._how = how
        self._replayed = replayed
        self._began = time.perf_counter()
        carrier: Carrier = {}
        if span.get_span_context().is_valid:
            propagate.inject(carrier, trace.set_span_in_context(span))
        self.carrier = carrier or None

    def __enter__(self) -> TurnSpan:
        return self

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._span.record_exception(exc)
            self._span.set_status(
                Status(StatusCode.ERROR, f"{typ.__name__ if typ else ''}: {exc}")
            )
            self._end()

    def done(self, output: TurnOutput) -> TurnOutput:
        """End the span with what the turn did; return *output*."""
        span = self._span
        driver = output.driver
        ended = driver.outcome if driver is not None else None
        status = ended.status if ended is not None else output.commit.status
        outcome = _OUTCOMES.get(status)
        if outcome is not None:
            span.set_attribute("perdure.outcome", outcome)
            if outcome in ("failed", "suspended"):
                error = ended.error if ended is not None else None
                span.set_status(Status(StatusCode.ERROR, str(error or outcome)))
        if output.events:
            commit = output.commit
            self._tel._note_cancels(
                commit.instance_id, commit.execution_id, output.events
            )
        self._end()
        return output

    def _end(self) -> None:
        tel = self._tel
        self._span.end()
        attributes = {"perdure.orchestration": self._name}
        tel.turns.add(1, attributes)
        tel.turn_duration.record(time.perf_counter() - self._began, attributes)
        if self._how == "cache_hit":
            tel.cache_hits.add(1, attributes)
        elif self._how == "replay":
            tel.replays.add(1, attributes)
            tel.replayed_events.add(self._replayed, attributes)


class ActivitySpan:
    """An activity attempt's span, current inside ``with``.

    Attributes:
        outcome: Set by the worker: ``completed``, ``failed``, ``retrying``,
            ``cancelled`` (turned into ``lost_select`` when the turn that
            cancelled it ran in this process and its select lost) or
            ``released`` (given back on shutdown).
    """

    __slots__ = ("_began", "_item", "_span", "_tel", "_token", "outcome")

    def __init__(self, tel: Telemetry, span: Span, item: ActivityItem) -> None:
        self._tel = tel
        self._span = span
        self._item = item
        self.outcome = "failed"
        self._began = 0.0
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> ActivitySpan:
        self._began = time.perf_counter()
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._tel.depth("activities", 1)
        return self

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tel, span = self._tel, self._span
        tel.depth("activities", -1)
        if self._token is not None:
            otel_context.detach(self._token)
        if exc is not None:
            span.record_exception(exc)
            # An asyncio cancellation (not the orchestration's): released.
            self.outcome = "failed" if isinstance(exc, Exception) else "released"
        outcome = self.outcome
        if outcome == "cancelled":
            outcome = tel._cancel_reason(self._item)
        span.set_attribute("perdure.outcome", outcome)
        if outcome in ("failed", "retrying"):
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()
        attributes = {"perdure.activity": self._item.name, "perdure.outcome": outcome}
        tel.attempts.add(1, attributes)
        tel.activity_duration.record(time.perf_counter() - self._began, attributes)
