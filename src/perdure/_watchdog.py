"""Stops orchestration turns that run longer than ``turn_timeout``.

Turns run on the event-loop thread: orchestration code that never yields
(``while True: pass``) would freeze the whole runtime, SIGTERM included.
The dispatcher marks each turn with `TurnWatchdog.begin`/`end` (a few
attribute writes and one uncontended lock, so turns keep their speed); a
daemon thread looks at the mark a few times per limit and, once a turn is
overdue, captures the loop thread's stack and raises `RunawayTurn` in that
thread (``PyThreadState_SetAsyncExc``).

The exception is raised at the next bytecode boundary the thread reaches,
so a blocking C call (``time.sleep``, a socket read, a long regular
expression) is interrupted only when it returns. It is a `BaseException`,
so ``except Exception`` does not swallow it, and it is raised again every
`REINJECT` seconds while the turn goes on, which defeats most
``except BaseException`` loops. Code that swallows it for ever (an inner
loop inside ``try ... except BaseException``) cannot be stopped: after
`STUCK_AFTER` limits and `STUCK_TRIES` injections the watchdog reports the
runtime lost (``on_stuck``).

An exception is only pending while a turn is marked: `end` clears the mark
under the lock the watchdog injects under, and cancels an injection that
has not landed yet. It therefore never lands in dispatcher code outside the
``try`` around the turn.

It cancels one by replacing it with a private exception that the loop
thread takes at once (in `TurnWatchdog.end`), not by calling
``PyThreadState_SetAsyncExc(tid, NULL)``: on CPython 3.11 that call leaves
the interpreter's eval-breaker flag set for good (the flag only clears when
an exception is taken), which is harmless until a trace function is
installed (coverage, pdb, debugpy); from then on the next call of a Python
function re-runs its first instruction for ever, and the process hangs.
(3.10, 3.12 and 3.13 do not hang; the replacement works on all of them.)
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
import traceback
from collections.abc import Callable

__all__ = ["REINJECT", "STUCK_AFTER", "STUCK_TRIES", "RunawayTurn", "TurnWatchdog"]

# Seconds between two injections into the same overdue turn (counted from
# the moment the previous one landed, so the dispatcher's handler is never
# hit by the next one).
REINJECT = 0.05
# A turn still running this many limits after it began, and after this many
# injections (each one has a fair chance to escape an ``except BaseException``
# loop, so a busy machine gets as many tries), cannot be stopped.
STUCK_AFTER = 3.0
STUCK_TRIES = 30

_set_async_exc = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
_set_async_exc.restype = ctypes.c_int

# When a RunawayTurn last landed, per thread id (set by its constructor,
# which runs in the thread it lands in).
_landed: dict[int, float] = {}


class RunawayTurn(BaseException):
    """Raised into a turn that ran longer than ``turn_timeout``.

    A `BaseException`, so that ``except Exception`` in orchestration code
    cannot swallow it.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        _landed[threading.get_ident()] = time.monotonic()


class _Cancelled(BaseException):
    """Replaces an injection that has not landed; never leaves `TurnWatchdog.end`."""


class _Turn:
    """The mark of the turn running now."""

    __slots__ = ("injected", "instance_id", "last", "stack", "started", "stuck")

    def __init__(self, instance_id: str, started: float) -> None:
        self.instance_id = instance_id
        self.started = started
        self.injected = 0  # injections so far
        self.last = 0.0  # when the last one was made
        self.stack = ""  # the loop thread's stack at the first one
        self.stuck = False


class TurnWatchdog:
    """Watches the turns of one event-loop thread.

    Args:
        limit: Seconds a turn may run.
        on_stuck: Called (from the watchdog thread) with the instance id and
            stack of a turn that ignored `RunawayTurn` for `STUCK_AFTER`
            limits; the loop thread is lost.
    """

    def __init__(
        self, limit: float, on_stuck: Callable[[str, str], None] | None = None
    ) -> None:
        self.limit = limit
        self._on_stuck = on_stuck
        self._lock = threading.Lock()
        self._turn: _Turn | None = None
        self._tid = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch the calling thread (the event loop's) from a daemon thread."""
        self._tid = threading.get_ident()
        self._closed.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._watch, name="perdure-turn-watchdog", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop watching; the thread ends within a fraction of the limit."""
        self._closed.set()
        self._thread = None

    def begin(self, instance_id: str) -> _Turn:
        """Mark the start of a turn of *instance_id*."""
        turn = _Turn(instance_id, time.monotonic())
        self._turn = turn
        return turn

    def end(self, turn: _Turn) -> None:
        """Clear *turn*'s mark and cancel an injection that has not landed.

        Idempotent; called on the watched thread. Once it returns, no
        `RunawayTurn` is pending.
        """
        with self._lock:
            if self._turn is turn:
                self._turn = None
            if not turn.injected:
                return
            # Replace a pending RunawayTurn with _Cancelled and take that at
            # the first eval-breaker check (the call's return, or the loop's
            # back edge); taking it is what clears the interpreter's flag
            # (module docstring). Inline: the first instruction of a called
            # function is such a check, where the RunawayTurn would land
            # before being replaced. An exception a signal handler raises
            # meanwhile (KeyboardInterrupt) is raised once _Cancelled is taken.
            other: BaseException | None = None
            armed = False  # set again if interrupted: that only replaces it
            while True:
                try:
                    if not armed:
                        _set_async_exc(self._tid, _Cancelled)
                        armed = True
                    while True:
                        pass
                except _Cancelled:
                    break
                except BaseException as exc:  # a signal handler's, before ours
                    other = other or exc
            if other is not None:
                raise other

    def _watch(self) -> None:
        closed = self._closed
        step = max(self.limit / 4, 0.01)
        while not closed.wait(step):
            turn = self._turn
            if turn is None:
                step = max(self.limit / 4, 0.01)
                continue
            now = time.monotonic()
            overdue = now - turn.started - self.limit
            if overdue < 0:
                step = min(max(-overdue, 0.01), max(self.limit / 4, 0.01))
                continue
            step = REINJECT / 2
            self._inject(turn, now)

    def _inject(self, turn: _Turn, now: float) -> None:
        with self._lock:
            if self._turn is not turn:
                return
            if turn.injected:
                landed = _landed.get(self._tid, 0.0)
                if now - max(landed, turn.last) < REINJECT:
                    return
            if not turn.stack:
                frame = sys._current_frames().get(self._tid)
                if frame is not None:
                    turn.stack = "".join(traceback.format_stack(frame))
            turn.injected += 1
            turn.last = now
            _set_async_exc(self._tid, RunawayTurn)
        if (
            not turn.stuck
            and now - turn.started > STUCK_AFTER * self.limit
            and turn.injected >= STUCK_TRIES
            and self._on_stuck is not None
        ):
            turn.stuck = True
            self._on_stuck(turn.instance_id, turn.stack)
