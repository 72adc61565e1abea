"""The orchestration dispatcher: fetch ready instances, run turns, commit.

Many ready instances are fetched at once and their turns committed in one
provider call. Live drivers stay in a bounded LRU cache between turns, so a
turn on a cached instance costs O(new events); a miss (restart, eviction,
another process ran a turn, detected by history length) replays.

Turns run on the event-loop thread, marked for a `TurnWatchdog` that stops
one running longer than ``turn_timeout`` (see `_watchdog`); the instance
then ends Failed with ``TurnTimeout`` and the rest of its batch commits.

Poison (``max_attempts``) counts dispatches without a committed turn, but a
dispatch lost to the storage itself is not the instance's fault: its commit
or its history read failed with `StorageError` (disk full, connection lost;
not a stored event that does not decode). Each one seen here raises that
instance's threshold by one until a turn of it commits (in this process
only: another runtime that fetches it does not know).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import _messages as m
from ._commit import failure_commit, finished_commit, suspend_commit
from ._core import _history as h
from ._core._driver import Driver
from ._core._rewind import plan_rewind
from ._errors import ErrorInfo, NondeterminismError, StorageError
from ._fused import (
    LocalWorker,
    by_instance,
    claim_work,
    fused_item,
    fused_output,
    hand_over,
)
from ._group_commit import GroupCommit
from ._outage import log_failure
from ._registry import Registry
from ._rewind_turn import rewind_inbox
from ._telemetry import get as telemetry
from ._turn import (
    Cached,
    Finished,
    Fresh,
    Inbox,
    Poison,
    Replay,
    Stray,
    TurnOutput,
    build_driver,
    code_error,
    parent_of,
    plan,
    read_inbox,
    run_turn,
    start_parent,
)
from ._waiting import WaitingLog
from ._watchdog import RunawayTurn, TurnWatchdog
from .providers._base import ActivityResult, OrchestrationItem, Provider, WorkRef

__all__ = ["Dispatcher", "DispatcherOptions"]

_log = logging.getLogger("perdure.dispatcher")


@dataclass(frozen=True, slots=True)
class DispatcherOptions:
    """Tuning of the dispatcher (set through `Runtime` options)."""

    batch_size: int
    lock_timeout: float
    max_attempts: int
    cache_size: int
    poll_interval: float
    # Seconds a turn (replay included) may run; None: no limit.
    turn_timeout: float | None = None
    # Suspend instead of failing on any non-perdure exception from code.
    suspend_on_error: bool = False
    # (name, version) pairs to take (version routing); None: any.
    handlers: tuple[tuple[str, str], ...] | None = None


# Instances whose storage-failed dispatches are remembered at most (the
# oldest are forgotten first; forgetting only makes poison come sooner).
_EXCUSED_MAX = 10_000


class Dispatcher:
    """Runs orchestration turns for one provider."""

    def __init__(
        self,
        provider: Provider,
        registry: Registry,
        options: DispatcherOptions,
        on_cancel_activity: Callable[[WorkRef], None],
        on_stuck: Callable[[str, str], None] | None = None,
    ) -> None:
        self._provider = provider
        self._registry = registry
        self._options = options
        self._on_cancel_activity = on_cancel_activity
        self._cache: OrderedDict[str, Driver] = OrderedDict()
        self._timers: list[float] = []
        self._stopping = False
        self._waiting = WaitingLog(provider, options.handlers)
        # Dispatches per instance lost to a StorageError since its last
        # committed turn here: they do not count towards max_attempts.
        self._excused: OrderedDict[str, int] = OrderedDict()
        self._watchdog: TurnWatchdog | None = None
        if options.turn_timeout is not None:
            self._watchdog = TurnWatchdog(options.turn_timeout, on_stuck)
        self._tel = telemetry()
        #: This runtime's activity worker: takes the work turns here schedule.
        self.worker: LocalWorker | None = None
        self._group = GroupCommit(self._commit_now)

    def stop(self) -> None:
        """Ask `run` to return after the batch in progress."""
        self._stopping = True

    async def run(self) -> None:
        """Dispatch until `stop` is called (may be called again after it died)."""
        # After a crash, nothing cached is trusted.
        self._cache.clear()
        if self._watchdog is not None:
            self._watchdog.start()
        try:
            await self._dispatch()
        finally:
            await self._group.wait_idle()
            if self._watchdog is not None:
                self._watchdog.close()

    async def _dispatch(self) -> None:
        options = self._options
        while not self._stopping:
            try:
                items = await self._provider.fetch_orchestrations(
                    options.batch_size, options.lock_timeout, options.handlers
                )
            except Exception as exc:
                log_failure(_log, exc, "fetching orchestration work failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if not items:
                await self._waiting.check()
                await self._provider.wait("orchestrations", self._idle_timeout())
                continue
            await self._process(items)

    def _prune_timers(self, now: float) -> None:
        # Fire times already past need no wake-up. Pruned on every push as
        # well as when idle: under continuous load the loop is never idle,
        # and the heap kept every timer ever scheduled (the soak's RSS
        # growth, issue 17).
        timers = self._timers
        while timers and timers[0] <= now - 1.0:
            heapq.heappop(timers)

    def _idle_timeout(self) -> float:
        now = self._provider.clock()
        timers = self._timers
        self._prune_timers(now)
        timeout = self._options.poll_interval
        if timers:
            timeout = min(timeout, max(timers[0] - now, 0.0) + 0.001)
        return timeout

    async def _process(self, items: list[OrchestrationItem]) -> None:
        outputs: list[TurnOutput] = []
        if (tel := self._tel) is not None:
            tel.depth("orchestrations", len(items))
        for item in items:
            try:
                output = await self._turn(item)
            except Exception as exc:
                # Storage trouble or corrupted history: leave everything as
                # stored and retry later; max_attempts turns it into poison
                # (storage trouble is excused in _read_events).
                self._cache.pop(item.instance.instance_id, None)
                log_failure(_log, exc, "turn of %s failed", item.instance.instance_id)
                try:
                    await self._provider.abandon_orchestration(
                        item.instance.instance_id,
                        item.lock_token,
                        _backoff(item.attempt),
                    )
                except Exception as exc:
                    # Storage is still failing: the lock expires after
                    # lock_timeout and the instance is fetched again.
                    iid = item.instance.instance_id
                    log_failure(_log, exc, "abandoning %s failed", iid)
                continue
            outputs.append(output)
        if tel is not None:
            tel.depth("orchestrations", -len(items))
        if not outputs:
            return
        try:
            outputs, results = await self._commit(outputs)
        except Exception as exc:
            commits = [output.commit for output in outputs]
            log_failure(_log, exc, "committing %d turns failed", len(commits))
            for commit in commits:
                self._cache.pop(commit.instance_id, None)
                if isinstance(exc, StorageError):
                    self._excuse(commit.instance_id)
            return
        for output, ok in zip(outputs, results, strict=True):
            self._after_commit(output, ok)

    async def absorb(self, results: Sequence[ActivityResult]) -> list[ActivityResult]:
        """Commit held activity *results* with the turns they wake (`_fused`).

        Only instances whose driver is cached here are tried; returns the
        results that were not written, for `Provider.complete_activities`.
        """
        rest: list[ActivityResult] = []
        runs: list[tuple[TurnOutput, list[ActivityResult]]] = []
        now = self._provider.clock()
        for iid, mine in by_instance(results).items():
            driver = self._cache.pop(iid, None)
            item = None if driver is None else fused_item(driver, mine, now)
            if driver is None or item is None or self._stopping:
                if driver is not None:
                    self._cache[iid] = driver
                rest.extend(mine)
                continue
            inbox = read_inbox(item)
            if (tel := self._tel) is None:
                output = self._run(item, inbox, now, [], driver, False)
            else:
                with tel.turn(item, Cached(driver), []) as span:
                    output = self._run(
                        item, inbox, now, [], driver, False, span.carrier
                    )
                    output = span.done(output)
            fused = fused_output(output, item, mine)
            if fused is None:
                rest.extend(mine)  # the driver ran: not cached any more
            else:
                runs.append((fused, mine))
        if not runs:
            return rest
        try:
            outputs, oks = await self._commit([o for o, _ in runs])
        except Exception as exc:
            log_failure(_log, exc, "committing %d fused turns failed", len(runs))
            outputs, oks = [o for o, _ in runs], [False] * len(runs)
        for output, (_, mine), ok in zip(outputs, runs, oks, strict=True):
            self._after_commit(output, ok)
            if not ok:
                rest.extend(mine)
        return rest

    async def _commit(
        self, outputs: list[TurnOutput]
    ) -> tuple[list[TurnOutput], list[bool]]:
        """Commit turns together with any others waiting (`_group_commit`)."""
        return await self._group.commit(outputs)

    async def _commit_now(
        self, outputs: list[TurnOutput]
    ) -> tuple[list[TurnOutput], list[bool]]:
        """Commit turns; work due now goes to this runtime's worker if it has room."""
        worker = self.worker
        if worker is not None:
            lease = self._options.lock_timeout
            outputs = [claim_work(output, worker, lease) for output in outputs]
        commits = [output.commit for output in outputs]
        oks: list[bool] = [False] * len(commits)
        try:
            oks = await self._provider.commit_turns(commits)
        finally:
            if worker is not None:
                hand_over(worker, commits, oks)
        return outputs, oks

    def _after_commit(self, output: TurnOutput, ok: bool) -> None:
        commit = output.commit
        iid = commit.instance_id
        driver = output.driver
        if not ok or driver is None or driver.outcome is not None:
            self._cache.pop(iid, None)
        else:
            self._cache[iid] = driver
            self._cache.move_to_end(iid)
            while len(self._cache) > self._options.cache_size:
                self._cache.popitem(last=False)
        if not ok:
            return
        self._excused.pop(iid, None)
        outcome = driver.outcome if driver is not None else None
        if outcome is not None and outcome.status == "Failed":
            # Once per failure: the turn that wrote it committed.
            _log.error(
                "instance %s failed: %s",
                iid,
                outcome.error,
                exc_info=outcome.exception,
            )
        for outbound in commit.outbound:
            # Timer fire messages are the only ones a turn sends with a due
            # time: wake up for them.
            fire_at = outbound.message.visible_at
            if fire_at is not None:
                heapq.heappush(self._timers, fire_at)
                self._prune_timers(self._provider.clock())
        for ref in commit.cancel_activities:
            self._on_cancel_activity(ref)

    async def _turn(self, item: OrchestrationItem) -> TurnOutput:
        record = item.instance
        iid = record.instance_id
        inbox = read_inbox(item)
        # The storage's clock (the database's on PostgreSQL): turn times and
        # timer fire times then share one clock with every occurrence time.
        now = self._provider.clock()
        max_attempts = self._options.max_attempts + self._excused.get(iid, 0)
        step = plan(item, inbox, self._cache.pop(iid, None), max_attempts)
        events: list[h.Event] = []
        source: Fresh | Driver | None
        rewind = False
        match step:
            case Finished() | Stray():
                return TurnOutput(finished_commit(item), None)
            case Poison():
                try:
                    events = await self._read_events(iid)
                except StorageError:
                    events = []
                error = ErrorInfo(
                    "PoisonMessage",
                    f"instance {iid!r} was dispatched {item.attempt} times "
                    "without a successful turn",
                    "poison",
                )
                return self._fail(item, error, now, parent_of(events))
            case Cached():
                source = step.driver
            case Fresh():
                source = step
            case Replay():
                source = None
                events = await self._read_events(iid)
                rewind = step.rewind and plan_rewind(events) is not None
                if rewind:
                    inbox = await rewind_inbox(self._provider, item, inbox, events, now)
        if (tel := self._tel) is None:
            return self._run(item, inbox, now, events, source, rewind)
        with tel.turn(item, step, events) as span:
            output = self._run(item, inbox, now, events, source, rewind, span.carrier)
            return span.done(output)

    def _run(
        self,
        item: OrchestrationItem,
        inbox: Inbox,
        now: float,
        events: list[h.Event],
        source: Fresh | Driver | None,
        rewind: bool,
        trace: dict[str, str] | None = None,
    ) -> TurnOutput:
        """Replay if *source* is None, run the turn, stop it if it runs away."""
        iid, record = item.instance.instance_id, item.instance
        # RunawayTurn (from the watchdog) can only be raised between begin
        # and the end of `end`: all of it inside this try.
        watchdog = self._watchdog
        turn = watchdog.begin(iid) if watchdog is not None else None
        try:
            try:
                if source is None:
                    source = self._replay(iid, record.execution_id, events, rewind)
                output = run_turn(self._registry, item, inbox, source, now, trace)
            finally:
                if watchdog is not None and turn is not None:
                    watchdog.end(turn)
        except NondeterminismError as exc:
            return self._suspend(item, exc)
        except RunawayTurn:
            if watchdog is None or turn is None:
                raise
            watchdog.end(turn)  # in case it landed inside `end`
            return self._runaway(item, inbox, now, events, source, turn.stack)
        bug = code_error(output.driver) if self._options.suspend_on_error else None
        return output if bug is None else self._suspend(item, bug)

    def _suspend(self, item: OrchestrationItem, exc: BaseException) -> TurnOutput:
        """Suspend the instance: keep its history and messages as they are."""
        iid = item.instance.instance_id
        _log.error(
            "instance %s suspended: %s: %s; its history and pending work are "
            "kept: deploy a fix, then resume it (perdure resume %s)",
            iid,
            type(exc).__name__,
            exc,
            iid,
            # A code bug's traceback points at the bug; a nondeterminism's
            # only at perdure's replay, and its message says it all.
            exc_info=None if isinstance(exc, NondeterminismError) else exc,
        )
        error = ErrorInfo.from_exception(exc, with_stack=True)
        return TurnOutput(suspend_commit(item, error), None)

    def _runaway(
        self,
        item: OrchestrationItem,
        inbox: Inbox,
        now: float,
        events: list[h.Event],
        source: Fresh | Driver | None,
        stack: str,
    ) -> TurnOutput:
        """Fail an instance whose turn the watchdog stopped."""
        iid = item.instance.instance_id
        limit = self._options.turn_timeout
        _log.error(
            "the turn of %s ran longer than turn_timeout (%s s) and was stopped; "
            "its stack when it was stopped:\n%s",
            iid,
            limit,
            stack or "(not captured)",
        )
        error = ErrorInfo(
            "TurnTimeout",
            f"a turn of instance {iid!r} ran longer than turn_timeout ({limit} s) "
            "without yielding, and was stopped",
        )
        if isinstance(source, Fresh):
            parent = source.start.parent
        elif isinstance(source, Driver) and source.started is not None:
            parent = source.started.parent
        elif events and isinstance(events[0], h.OrchestrationStarted):
            parent = events[0].parent
        else:
            parent = start_parent(inbox)
        return self._fail(item, error, now, parent)

    def _excuse(self, instance_id: str) -> None:
        """Do not count this dispatch of *instance_id*: storage failed it."""
        excused = self._excused
        excused[instance_id] = excused.get(instance_id, 0) + 1
        excused.move_to_end(instance_id)
        while len(excused) > _EXCUSED_MAX:
            excused.popitem(last=False)

    async def _read_events(self, instance_id: str) -> list[h.Event]:
        try:
            rows = await self._provider.read_history(instance_id)
        except StorageError:
            self._excuse(instance_id)
            raise
        # A row that does not decode (StorageError too) is the instance's
        # own: its dispatch counts.
        return [h.event_from_json(row) for row in rows]

    def _replay(
        self,
        instance_id: str,
        execution_id: int,
        events: list[h.Event],
        rewind: bool = False,
    ) -> Driver:
        if not events or not isinstance(events[0], h.OrchestrationStarted):
            raise NondeterminismError(
                "corrupted history: it does not begin with OrchestrationStarted"
            )
        driver = build_driver(self._registry, instance_id, execution_id, events[0])
        driver.replay(events, rewind=rewind)
        return driver

    def _fail(
        self,
        item: OrchestrationItem,
        error: ErrorInfo,
        now: float,
        parent: m.ParentLink | None,
    ) -> TurnOutput:
        _log.error("instance %s failed: %s", item.instance.instance_id, error)
        return TurnOutput(failure_commit(item, error, now, parent), None)


def _backoff(attempt: int) -> float:
    return float(min(2 ** max(attempt - 1, 0) * 0.1, 30.0))
