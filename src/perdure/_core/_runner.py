"""The coroutine runner: steps tasks, parks them on futures, unwinds them.

`Runner` is the half of the driver that knows coroutines and nothing of
history: a FIFO ready queue of tasks, one ``send``/``throw`` per step, the
unwinding of cancelled tasks, and the guards of `_runaway` against code
that would wedge it. `Driver` extends it with replay; the two hooks it
fills in (`Runner._root_finished`, `Runner._continue_as_new`) are where a
finished root task becomes the execution's outcome.

Invariants:

* ``current`` is the task whose coroutine is executing, else None; work
  created now belongs to it (DESIGN §4.2).
* A task is in ``_ready`` at most once per wake-up; stepping a task that has
  finished meanwhile does nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from .._errors import Cancelled
from ._runaway import (
    MAX_BAD_AWAITS,
    MAX_CANCELLED_CALLS,
    MAX_CLOSE_REFUSALS,
    MAX_UNWIND,
    RunawayTask,
    running_task,
)
from ._tasks import (
    CANCELLED,
    DONE,
    FAILED,
    PENDING,
    DurableFuture,
    Task,
    Unobserved,
    WorkFuture,
)
from ._traps import IN_ORCHESTRATION, foreign_await_error, self_await_error

__all__ = ["ContinueAsNewSignal", "Runner"]


class ContinueAsNewSignal(BaseException):
    """Raised by ``ctx.continue_as_new``; ends the execution at once.

    A `BaseException` so that ``except Exception`` cannot swallow it.
    """

    def __init__(self, input: Any, version: str | None = None) -> None:
        super().__init__("continue_as_new")
        self.input = input
        self.version = version


class Runner:
    """Runs the tasks of one execution; implements `Scheduler` with `Driver`."""

    def __init__(self) -> None:
        self.is_replaying = False
        self.root: Task | None = None
        self.current: Task | None = None
        # Futures failed or cancelled so far (each one's stamp, for join).
        self.failure_count = 0
        # The task being force-closed (see force_close), if any.
        self.closing: Task | None = None
        # Tasks whose coroutine is executing, innermost last (a task starts
        # its children synchronously).
        self._stack: list[Task] = []
        # Tasks to step, with the exception to throw in (None: send None).
        self._ready: deque[tuple[Task, BaseException | None]] = deque()
        # Exceptions no code will see, from new turns only (never replayed,
        # so a rebuilt driver does not report them twice).
        self._unobserved: list[Unobserved] = []
        # Scopes whose first durable call after cancellation was refused
        # (new turns only, like _unobserved): logged with a hint (§8).
        self._refused: list[tuple[str, str]] = []
        # Shielded work and draining tasks not settled yet: the execution
        # may not end before they have (DESIGN §8).
        self.holds: set[DurableFuture[Any]] = set()
        # Calls to make once no task is ready (task groups react there).
        self._later: deque[Callable[[], None]] = deque()

    # ------------------------------------------------------------ hooks
    def _root_finished(self, state: int, value: Any) -> None:
        """The root task ended in *state* with *value* (a result or error)."""
        raise NotImplementedError

    def _continue_as_new(self, signal: ContinueAsNewSignal) -> None:
        """Live code called ``continue_as_new``."""
        raise NotImplementedError

    def cancel_work(self, work: WorkFuture[Any], reason: str) -> None:
        """Cancel unfinished work and record its cancel event (`Scheduler`)."""
        raise NotImplementedError

    # --------------------------------------------------- durable-call checks
    def _require_task(self) -> Task | None:
        """The running task, for a durable call; raise if it may not make one.

        Returns:
            None when the call must quietly do nothing (see `refusal`); the
            caller then returns a future that is already cancelled.
        """
        task = self.current
        if task is not None and (task.cancel_reason is None or task.shield_depth):
            return task
        error = self.refusal()
        if error is None:
            return None
        raise error

    def outside_task_error(self) -> BaseException | None:
        """The error for an await made while no task is being stepped.

        See `close_refusal`; None means: suspend.
        """
        return self.close_refusal()

    def require_live_task(self) -> None:
        """Raise unless the running task may act (for ``continue_as_new``).

        Raises:
            Cancelled: The running task was cancelled (DESIGN §8), even
                inside a shield: a shield lets cleanup run, not a new
                execution start.
        """
        task = self.current
        if task is not None and task.cancel_reason is not None:
            raise Cancelled(task.cancel_reason)
        if self._require_task() is None:
            raise GeneratorExit  # a coroutine being closed: end it

    def current_cancelled(self) -> bool:
        """Return True if the running task was cancelled and is not shielded."""
        task = self.current
        return (
            task is not None
            and task.cancel_reason is not None
            and not task.shield_depth
        )

    def hold(self, future: DurableFuture[Any]) -> None:
        """Keep the execution from ending until *future* settles (`Scheduler`)."""
        if future._state != PENDING or future in self.holds:
            return
        holds = self.holds
        holds.add(future)
        future._on_done(holds.discard)

    def call_later(self, call: Callable[[], None]) -> None:
        """Run *call* once every ready task has run (deterministic: FIFO)."""
        self._later.append(call)

    def interrupt(self, task: Task, exc: BaseException) -> bool:
        """Throw *exc* into *task* at the await it is parked on.

        Returns:
            False if the task is not parked (running, finished or already
            woken): nothing is thrown.
        """
        waiting, callback = task.waiting, task.wait_callback
        if waiting is None or callback is None or task._state != PENDING:
            return False
        waiting._remove_callback(callback)
        task.waiting = task.wait_callback = None
        self._ready.append((task, exc))
        return True

    def take_refused(self) -> list[tuple[str, str]]:
        """Scopes refused a durable call after cancellation, with the reason.

        One entry per task, from new turns only; the runtime logs them with
        a hint to use ``ctx.shield`` (DESIGN §8). This clears the list.
        """
        taken, self._refused = self._refused, []
        return taken

    def refusal(self) -> BaseException | None:
        """Why the running code may not make a durable call now.

        Called when no task is running (see `close_refusal`) or the running
        task was cancelled: that raises `Cancelled`, then `RunawayTask` once
        it has been refused `MAX_CANCELLED_CALLS` times.

        Returns:
            None when even that was swallowed: raising again would only feed
            the loop, so the call quietly does nothing and returns
            `refused_future`, whose await suspends (and the unwind bound
            applies).
        """
        task = self.current
        if task is None:
            return self.close_refusal()
        task.cancelled_calls += 1
        if task.cancelled_calls > MAX_CANCELLED_CALLS + 1:
            return None
        reason = task.cancel_reason or "cancelled"
        if task.cancelled_calls == 1 and not self.is_replaying:
            self._refused.append((task.path, reason))
        if task.cancelled_calls > MAX_CANCELLED_CALLS:
            # A loop that swallows Cancelled around a scheduling call would
            # spin forever without yielding: stop the task.
            return RunawayTask(reason)
        return Cancelled(reason)

    def close_refusal(self) -> BaseException | None:
        """The error for a durable call made while no task is being stepped.

        That happens legitimately when a coroutine is being closed: a task
        force-closed here, or a discarded driver's suspended coroutine closed
        by the garbage collector, whose ``finally`` block awaits or
        schedules. `GeneratorExit` then lets ``close()`` finish quietly;
        anything else is a misuse of the context (RuntimeError).

        Returns:
            None once the coroutine being closed has swallowed
            `MAX_CLOSE_REFUSALS` of those: its awaits then suspend, so that
            ``close()`` gives up on it instead of the loop spinning for ever.
        """
        closing = self.closing
        if closing is None and self.root is not None:
            closing = running_task(self.root)
        if closing is None:
            return RuntimeError(
                "durable operations can only be started by orchestration code "
                "while the orchestration is running"
            )
        closing.close_refusals += 1
        if closing.abandoned or closing.close_refusals > MAX_CLOSE_REFUSALS:
            return None
        return GeneratorExit()

    def refused_future(self) -> DurableFuture[Any]:
        """What a refused durable call returns once raising is pointless.

        Already cancelled, and no work behind it; awaiting it suspends (the
        caller is cancelled or being closed), which lets the driver stop it.
        """
        future: DurableFuture[Any] = DurableFuture(self)
        future._settle(CANCELLED, Cancelled("refused"))
        return future

    # ------------------------------------------------------------- tasks
    def create_task(self, coro: Coroutine[Any, Any, Any]) -> DurableFuture[Any]:
        """Start a child task of the running task; it runs to its first block."""
        try:
            parent = self._require_task()
        except BaseException:
            coro.close()
            raise
        if parent is None:
            coro.close()
            return self.refused_future()
        task = Task(self, coro, parent)
        if task.shielded:
            self.hold(task)
        self._step(task, None)
        return task

    def take_unobserved(self) -> list[Unobserved]:
        """Exceptions no orchestration code will see, collected in new turns.

        A task's exception raised after it was cancelled (its future ends
        cancelled instead), and failures of tasks nothing retrieved by the
        time the execution ended. The runtime logs them (DESIGN §8); this
        clears the list.
        """
        taken, self._unobserved = self._unobserved, []
        return taken

    def _run_ready(self) -> None:
        ready, later = self._ready, self._later
        while ready or later:
            if not ready:
                later.popleft()()
                continue
            task, exc = ready.popleft()
            if exc is None and task.waiting is not None:
                # A stale wake-up: the task was stepped another way since
                # (a cancellation's unwinding) and is parked again, in a
                # shield, on a future not done yet.
                continue
            if task._state == PENDING or task.cancel_reason is not None:
                self._step(task, exc)

    def _park(self, task: Task, future: DurableFuture[Any]) -> None:
        def wake(_: DurableFuture[Any]) -> None:
            if task.waiting is future:
                task.waiting = None
                task.wait_callback = None
                self._ready.append((task, None))

        task.waiting = future
        task.wait_callback = wake
        future._on_done(wake)

    def _step(self, task: Task, exc: BaseException | None) -> bool:
        """Advance *task* once; return True if it is still suspended."""
        coro = task.coro
        if task.abandoned or getattr(coro, "cr_frame", None) is None:
            return False  # already finished (closed or returned), or dropped
        previous = self.current
        self.current = task
        self._stack.append(task)
        running = IN_ORCHESTRATION.set(True)
        try:
            yielded = coro.send(None) if exc is None else coro.throw(exc)
        except StopIteration as stop:
            self._finished(task, DONE, stop.value)
            return False
        except ContinueAsNewSignal as signal:
            if task.cancel_reason is None:  # a cancelled task cannot (§8)
                self._continue_as_new(signal)
            self._finished(task, CANCELLED, Cancelled("continued as new"))
            return False
        except (Cancelled, RunawayTask) as cancelled:
            self._finished(task, CANCELLED, cancelled)
            return False
        except Exception as error:
            self._finished(task, FAILED, error)
            return False
        finally:
            IN_ORCHESTRATION.reset(running)
            self._stack.pop()
            self.current = previous
        if task.cancel_reason is not None and not task.shield_depth:
            # Cancelled, and not inside a shield (where it parks as usual).
            if (task._state != PENDING or task.draining) and task not in self._stack:
                # Cancelled while it was running (deferred unwinding), with
                # the same bound as a parked task's unwinding.
                if task.unwinds < MAX_UNWIND:
                    task.unwinds += 1
                    self._ready.append((task, Cancelled(task.cancel_reason)))
                else:
                    self._force_close(task)
                    return False
            return True
        if isinstance(yielded, DurableFuture) and yielded._driver is self:
            if yielded is not task:
                if task.bad_awaits:
                    task.bad_awaits = 0
                if yielded._state != PENDING:
                    self._ready.append((task, None))
                else:
                    self._park(task, yielded)
                return True
            bad_await: BaseException = self_await_error()
        else:
            bad_await = foreign_await_error(yielded)
        task.bad_awaits += 1
        if task.bad_awaits <= MAX_BAD_AWAITS:
            self._ready.append((task, bad_await))
        # else: it keeps swallowing the error; rather than spin, it stays
        # suspended (until cancelled, like any parked task).
        return True

    def unwind_cancelled(self, task: Task) -> None:
        """Throw `Cancelled` into a cancelled task until its coroutine ends.

        A coroutine inside a shield is left alone (parked or running), and
        one that enters a shield while unwinding is stopped there: the task
        *drains* until its coroutine ends (DESIGN §8).
        """
        if task.shield_depth:
            self._drain(task)
            return
        if task.waiting is not None and task.wait_callback is not None:
            task.waiting._remove_callback(task.wait_callback)
        task.waiting = task.wait_callback = None
        if task in self._stack:
            return  # running right now: it unwinds at its next await
        reason = task.cancel_reason or "cancelled"
        while task.unwinds < MAX_UNWIND:
            task.unwinds += 1
            if not self._step(task, Cancelled(reason)):
                return
            if _inside_shield(task):  # its cleanup entered one
                self._drain(task)
                return
        self._force_close(task)

    def _drain(self, task: Task) -> None:
        task.draining = True
        self.hold(task)

    def _force_close(self, task: Task) -> None:
        error = self.force_close(task)
        if error is not None:
            self._note_unobserved(task, error)
        if task._state == PENDING and task.cancel_reason is not None:
            # Its coroutine will never end now (a draining one included).
            task._settle(CANCELLED, Cancelled(task.cancel_reason))

    def force_close(self, task: Task) -> BaseException | None:
        """Close the coroutine of a cancelled task that will not unwind.

        It is closed like a discarded driver's coroutine being
        garbage-collected: no task is current, so its durable calls raise
        `GeneratorExit` (a quiet close) and
        ``OrchestrationContext.is_replaying`` is true. A coroutine that
        ignores `GeneratorExit` is dropped: the task is marked ``abandoned``
        and is never resumed again.

        Returns:
            An exception the coroutine's cleanup raised while being closed
            (for the unobserved-error report), else None.
        """
        coro = task.coro
        previous, self.current = self.current, None
        closing, self.closing = self.closing, task
        try:
            coro.close()
        except RuntimeError as error:
            if getattr(coro, "cr_frame", None) is not None:
                # "coroutine ignored GeneratorExit": it yielded again.
                task.abandoned = True
                return None
            return error
        except (Cancelled, RunawayTask):
            return None  # the task is cancelled anyway
        except Exception as error:
            return error
        finally:
            self.current = previous
            self.closing = closing
        return None

    def _note_unobserved(self, task: Task, error: BaseException) -> None:
        if not self.is_replaying:
            self._unobserved.append(Unobserved(task.path, error, after_cancel=True))

    def _finished(self, task: Task, state: int, value: Any) -> None:
        if task.cancel_reason is not None:
            if state == FAILED:
                # Raised from its except/finally after losing: nobody can
                # see it (its future ends cancelled), so it is reported.
                self._note_unobserved(task, value)
            state, value = CANCELLED, Cancelled(task.cancel_reason)
        task._settle(state, value)
        if task is self.root:
            self._root_finished(state, value)


def _inside_shield(task: Task) -> bool:
    # A function, not an inline test: stepping the task changes the depth,
    # which a type checker narrowing the attribute cannot see.
    return task.shield_depth > 0
