"""The `Simulator` and the result types `perdure.testing` re-exports.

Kept apart from `perdure.testing` so that module stays a short index of the
test helpers; everything public here is documented and imported from there.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ._codec import to_json
from ._core import _history as h
from ._core._driver import Driver, Outcome
from ._core._rewind import voided_ids
from ._core._values import fold_values
from ._errors import ErrorInfo, NondeterminismError
from ._registry import Registry, name_of
from ._scope_log import log_unobserved
from ._turn import build_driver

__all__ = [
    "DEFAULT_START_TIME",
    "PendingWork",
    "ReplayResult",
    "Simulator",
    "new_driver",
    "result_of",
]

#: Virtual clock start of a `Simulator` (2024-01-01T00:00:00Z), so that
#: ``ctx.utc_now()`` gives a plausible date.
DEFAULT_START_TIME = 1_704_067_200.0


def _scheduled_kind(event: h.Event | None) -> str | None:
    """The work kind *event* schedules, or None if it schedules nothing."""
    if event is None or event.role != "scheduling":
        return None
    return event.work


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Where an execution stands after a replay or a simulated turn.

    Attributes:
        status: ``"Running"``, ``"Completed"``, ``"Failed"``, ``"Cancelled"``
            or ``"ContinuedAsNew"``.
        output: The JSON output when Completed; the new input when
            ContinuedAsNew.
        error: The failure when Failed.
        custom_status: Last value given to ``set_custom_status`` (or None).
        history: The execution's events.
        carried_events: ContinuedAsNew only: unconsumed external events, as
            ``(name, data)``, handed to the next execution.
        values: The instance's values (``ctx.set_value``) at this point.
    """

    status: str
    output: Any = None
    error: ErrorInfo | None = None
    custom_status: Any = None
    history: tuple[h.Event, ...] = field(default=(), repr=False)
    carried_events: tuple[tuple[str, Any], ...] = ()
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        """True once the execution has ended (any status but Running)."""
        return self.status != "Running"


@dataclass(frozen=True, slots=True)
class PendingWork:
    """Scheduled work that has neither completed nor been cancelled.

    Attributes:
        event_id: Id of the scheduling event; completions refer to it.
        kind: ``"activity"``, ``"timer"``, ``"wait"`` or ``"sub"``.
        name: Activity, event or sub-orchestration name (``""`` for timers).
        input: Activity or sub-orchestration input.
        fire_at: Timers only: when the timer is due (Unix seconds).
        scope: Path of the task scope that scheduled it (``"0"`` is the root).
    """

    event_id: int
    kind: str
    name: str
    input: Any = None
    fire_at: float | None = None
    scope: str = "0"


class Simulator:
    """Run an orchestration turn by turn in memory, with a virtual clock.

    Each delivery (`complete`, `fail`, `fire`, `raise_event`, `cancel`) is
    one turn, unless made inside ``with sim.turn():``, which delivers them
    together in one turn. Nothing runs by itself: activities complete when
    the test says so (`complete`, `fail`, `run_activity`, `run`), timers fire
    when the clock passes them (`advance`) or on `fire`. Exceptions no
    orchestration code will see (a task's error raised after it was
    cancelled, an unawaited task's failure) are logged on the
    ``perdure.orchestration`` logger, as the runtime does.

    Args:
        orchestration: The orchestration function (decorated or not).
        input: Its input.
        activities: Activity name → fake implementation, used by
            `run_activity` and `run`: a callable is called with the input
            (raising fails the activity), an exception instance fails it,
            any other value is the result.
        instance_id: The simulated instance id.
        start_time: Virtual clock at start (Unix seconds).

    Attributes:
        now: The virtual clock (Unix seconds): the timestamp of the next
            turn's events. Tests may move it forward directly, e.g. to make
            an activity answer "later"; `advance` also fires due timers.
        activities: The fakes (may be changed between turns).
    """

    def __init__(
        self,
        orchestration: Callable[..., Any],
        input: Any = None,
        *,
        activities: Mapping[str, Any] | None = None,
        instance_id: str = "simulated",
        start_time: float = DEFAULT_START_TIME,
    ) -> None:
        self.instance_id = instance_id
        self.activities: dict[str, Any] = dict(activities or {})
        self.now = start_time
        self._orchestration = orchestration
        self._registry = Registry([orchestration])
        odef = self._registry.orchestration(name_of(orchestration))
        self._history: list[h.Event] = []
        self._last_turn: list[h.Event] = []
        self._outcome: Outcome | None = None
        self._carried: tuple[tuple[str, Any], ...] = ()
        self._batch: list[tuple[type[h.Event], int | None, dict[str, Any]]] | None
        self._batch = None
        start = h.OrchestrationStarted(
            event_id=1,
            timestamp=self.now,
            name=odef.name,
            version=odef.version,
            engine=h.ENGINE_VERSION,
        )
        self._driver = build_driver(self._registry, instance_id, 1, start)
        payload = to_json(input, "orchestration input")
        fields = {
            "name": odef.name,
            "version": odef.version,
            "input": payload,
            "engine": h.ENGINE_VERSION,
        }
        self._run_turn([(h.OrchestrationStarted, None, fields)])

    # ------------------------------------------------------------ inspection
    @property
    def history(self) -> list[h.Event]:
        """All events so far (a copy)."""
        return list(self._history)

    @property
    def last_turn(self) -> list[h.Event]:
        """The events the most recent turn appended."""
        return list(self._last_turn)

    @property
    def result(self) -> ReplayResult:
        """The current status, output or error."""
        return result_of(self._outcome, self._history, self._carried)

    @property
    def is_finished(self) -> bool:
        """True once the execution has ended."""
        return self._outcome is not None

    def pending(self, kind: str | None = None) -> list[PendingWork]:
        """Open work (not completed, not cancelled), in event id order.

        Args:
            kind: Only this kind (``"activity"``, ``"timer"``, ``"wait"``,
                ``"sub"``).
        """
        return [p for p in _open_work(self._history) if kind in (None, p.kind)]

    # ------------------------------------------------------------- delivering
    def complete(self, event_id: int, result: Any = None) -> None:
        """Complete activity or sub-orchestration *event_id* with *result*."""
        kind = self._answerable(event_id, ("activity", "sub"))
        cls = h.ActivityCompleted if kind == "activity" else h.SubOrchestrationCompleted
        self._submit(cls, event_id, result=to_json(result, "result"))

    def fail(self, event_id: int, error: BaseException | str = "failed") -> None:
        """Fail activity or sub-orchestration *event_id* with *error*."""
        kind = self._answerable(event_id, ("activity", "sub"))
        info = (
            ErrorInfo("Error", error)
            if isinstance(error, str)
            else ErrorInfo.from_exception(error)
        )
        cls = h.ActivityFailed if kind == "activity" else h.SubOrchestrationFailed
        self._submit(cls, event_id, error=info.to_json())

    def fire(self, event_id: int) -> None:
        """Fire timer *event_id*, moving the clock forward to its due time."""
        self._answerable(event_id, ("timer",))
        created = self._history[event_id - 1]
        assert isinstance(created, h.TimerCreated)
        self.now = max(self.now, created.fire_at)
        self._submit(h.TimerFired, event_id)

    def raise_event(self, name: str, data: Any = None) -> None:
        """Deliver external event *name* (buffered until a wait takes it)."""
        self._submit(h.EventRaised, None, name=name, data=to_json(data, "event data"))

    def cancel(self, reason: str = "") -> None:
        """Request cancellation of the instance (as ``Client.cancel_instance``)."""
        self._submit(h.OrchestrationCancelRequested, None, reason=reason)

    def advance(self, seconds: float) -> int:
        """Move the clock forward, firing every timer that becomes due.

        Timers fire one turn each, earliest first, with the clock at their due
        time; timers they create fire too if due before the target.

        Returns:
            The number of timers fired.
        """
        target = self.now + seconds
        fired = 0
        while not self.is_finished:
            due = [p for p in self.pending("timer") if (p.fire_at or 0.0) <= target]
            if not due:
                break
            for timer in sorted(due, key=lambda p: (p.fire_at, p.event_id)):
                self.fire(timer.event_id)
                fired += 1
                if self._batch is None:
                    break  # re-read pending: the turn may have changed it
            if self._batch is not None:
                break
        self.now = max(self.now, target)
        return fired

    def run_activity(self, event_id: int) -> None:
        """Complete or fail activity *event_id* using its fake in `activities`.

        Raises:
            KeyError: No fake is registered for the activity's name.
        """
        self._answerable(event_id, ("activity",))
        scheduled = self._history[event_id - 1]
        assert isinstance(scheduled, h.ActivityScheduled)
        if scheduled.name not in self.activities:
            raise KeyError(f"no fake registered for activity {scheduled.name!r}")
        fake = self.activities[scheduled.name]
        if isinstance(fake, BaseException):
            self.fail(event_id, fake)
            return
        if callable(fake):
            try:
                value = fake(scheduled.input)
            except Exception as exc:
                self.fail(event_id, exc)
                return
        else:
            value = fake
        self.complete(event_id, value)

    def run(self, *, max_turns: int = 10_000) -> ReplayResult:
        """Run faked activities (oldest first) and skip time until blocked.

        Stops when the execution ends or only work without a fake (waits,
        sub-orchestrations, activities missing from `activities`) is left.

        Raises:
            RuntimeError: Called inside a ``with sim.turn():`` block.
        """
        if self._batch is not None:
            raise RuntimeError("Simulator.run() cannot be used inside turn()")
        for _ in range(max_turns):
            if self.is_finished:
                break
            open_work = self.pending()
            runnable = [
                p
                for p in open_work
                if p.kind == "activity" and p.name in self.activities
            ]
            timers = [p for p in open_work if p.kind == "timer"]
            if runnable:
                self.run_activity(runnable[0].event_id)
            elif timers:
                first = min(timers, key=lambda p: (p.fire_at, p.event_id))
                self.fire(first.event_id)
            else:
                break
        return self.result

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Deliver everything submitted inside the block in one turn."""
        if self._batch is not None:
            raise RuntimeError("Simulator.turn() blocks cannot be nested")
        self._batch = []
        try:
            yield
            batch = self._batch
        finally:
            self._batch = None
        if batch:
            self._run_turn(batch)

    def restart(self) -> None:
        """Drop the in-memory driver and rebuild it by replaying the history.

        This is what the runtime does after a crash or a cache eviction.

        Raises:
            NondeterminismError: The replay does not match the history.
        """
        driver = new_driver(
            self._registry, self._orchestration, self.instance_id, 1, self._history
        )
        driver.replay(list(self._history))
        self._driver = driver

    def rewind(self, orchestration: Callable[..., Any] | None = None) -> None:
        """Take a failed execution back to before its failure (``Client.rewind``).

        The failure stays in `history`, voided by an `ExecutionRewound`
        event, and the code goes on from before it in one turn; work the
        failure cancelled is open again (`pending`).

        Args:
            orchestration: The code to go on with (a fix of the one that
                failed); the simulator's own by default.

        Raises:
            RuntimeError: The execution has not failed, or inside `turn`.
            NondeterminismError: The code does not replay the history.
        """
        if self._outcome is None or self._outcome.status != "Failed":
            raise RuntimeError("only a failed execution can be rewound")
        if self._batch is not None:
            raise RuntimeError("Simulator.rewind() cannot be used inside turn()")
        code = orchestration or self._orchestration
        registry = Registry([code]) if orchestration else self._registry
        driver = new_driver(registry, code, self.instance_id, 1, self._history)
        driver.replay(list(self._history), rewind=True)
        self._orchestration, self._registry, self._driver = code, registry, driver
        self._outcome = None
        self._run_turn([])

    # ---------------------------------------------------------------- private
    def _answerable(self, event_id: int, kinds: tuple[str, ...]) -> str:
        """Check *event_id* is scheduled work of *kinds*, not yet completed.

        Cancelled work may still be answered: a late completion is recorded
        and ignored, as in production.
        """
        event = (
            self._history[event_id - 1] if 0 < event_id <= len(self._history) else None
        )
        kind = _scheduled_kind(event)
        if kind not in kinds:
            raise ValueError(f"event {event_id} is not a scheduled {'/'.join(kinds)}")
        if any(
            type(e) in h.COMPLETION_TYPES and e.source_event_id == event_id
            for e in self._history
        ):
            raise ValueError(f"{kind} {event_id} has already completed")
        assert kind is not None
        return kind

    def _submit(
        self, cls: type[h.Event], source_event_id: int | None, **fields: Any
    ) -> None:
        if self.is_finished:
            raise RuntimeError(
                f"the orchestration has ended ({self.result.status}); "
                "nothing more can be delivered"
            )
        message = (cls, source_event_id, fields)
        if self._batch is not None:
            self._batch.append(message)
        else:
            self._run_turn([message])

    def _run_turn(
        self, messages: list[tuple[type[h.Event], int | None, dict[str, Any]]]
    ) -> None:
        driver = self._driver
        driver.begin_turn(self.now)
        for cls, source_event_id, fields in messages:
            driver.deliver(cls, source_event_id, **fields)
        result = driver.end_turn()
        log_unobserved(driver)  # as the runtime does
        self._last_turn = list(result.events)
        self._history.extend(result.events)
        if result.outcome is not None and self._outcome is None:
            self._outcome = result.outcome
            self._carried = tuple(result.carried_events)


def new_driver(
    registry: Registry,
    orchestration: Callable[..., Any],
    instance_id: str,
    execution_id: int,
    events: list[h.Event],
) -> Driver:
    if not events or not isinstance(events[0], h.OrchestrationStarted):
        raise NondeterminismError(
            "corrupted history: it does not begin with OrchestrationStarted"
        )
    odef = registry.orchestration(name_of(orchestration))
    # Run the given code whatever name/version the history was started with.
    start = dataclasses.replace(events[0], name=odef.name, version=odef.version)
    return build_driver(registry, instance_id, execution_id, start)


def result_of(
    outcome: Outcome | None,
    history: list[h.Event],
    carried: tuple[tuple[str, Any], ...],
) -> ReplayResult:
    custom = None
    for event in history:
        if isinstance(event, h.CustomStatusUpdated):
            custom = event.value
    values = fold_values(history)
    if outcome is None:
        return ReplayResult(
            "Running", custom_status=custom, history=tuple(history), values=values
        )
    return ReplayResult(
        outcome.status,
        output=outcome.output,
        error=outcome.error,
        custom_status=custom,
        history=tuple(history),
        carried_events=carried,
        values=values,
    )


def _open_work(history: list[h.Event]) -> list[PendingWork]:
    """Work still open at the end of *history*, derived from the events alone.

    Waits pair with external events first-in first-out per name, except
    waits that get cancelled: those never consume an event (DESIGN §1.4).
    """
    voided = voided_ids(history)
    history = [e for e in history if e.event_id not in voided]
    cancelled = {e.source_event_id for e in history if e.role == "cancel"}
    closed: set[int] = set()
    work: dict[int, PendingWork] = {}
    open_waits: dict[str, deque[int]] = {}
    buffered: dict[str, int] = {}
    for event in history:
        kind = _scheduled_kind(event)
        if kind is not None:
            work[event.event_id] = PendingWork(
                event.event_id,
                kind,
                str(getattr(event, "name", "")),
                getattr(event, "input", None),
                getattr(event, "fire_at", None),
                str(getattr(event, "scope", "0")),
            )
            if kind == "wait" and event.event_id not in cancelled:
                name = work[event.event_id].name
                if buffered.get(name):
                    buffered[name] -= 1
                    closed.add(event.event_id)
                else:
                    open_waits.setdefault(name, deque()).append(event.event_id)
        elif isinstance(event, h.EventRaised):
            waits = open_waits.get(event.name)
            if waits:
                closed.add(waits.popleft())
            else:
                buffered[event.name] = buffered.get(event.name, 0) + 1
        elif type(event) in h.COMPLETION_TYPES and event.source_event_id is not None:
            closed.add(event.source_event_id)
    return [w for i, w in work.items() if i not in closed and i not in cancelled]
