"""Runaway turns stopped while a trace function is installed.

Coverage, pdb and IDE debuggers install a trace function. Cancelling an
injection with ``PyThreadState_SetAsyncExc(tid, NULL)`` leaves CPython
3.11's eval-breaker flag set for good, and under a tracer the next call of a
Python function then spins on its first instruction for ever: the whole
process hangs (this froze the suite under ``coverage run``). The scenarios
run in a subprocess with their own trace function, so a regression fails on
the timeout instead of freezing the test process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from _helpers import WAIT

from perdure import _watchdog
from perdure._watchdog import RunawayTurn, TurnWatchdog

# A trace function on every thread, as coverage and debuggers install (kept
# when the process already has one: coverage measuring the subprocess).
_TRACED = """
import sys, threading

def _trace(frame, event, arg):
    return None

if sys.gettrace() is None:
    sys.settrace(_trace)
    threading.settrace(_trace)
"""

_WATCHDOG_ONLY = """
from perdure._watchdog import RunawayTurn, TurnWatchdog

watchdog = TurnWatchdog(0.05)
watchdog.start()
turn = watchdog.begin("spin")
try:
    while True:
        pass
except RunawayTurn:
    stopped = True
finally:
    watchdog.end(turn)
watchdog.close()


def after() -> int:
    return 1


print("stopped", stopped, after(), flush=True)
"""

_RUNTIME = """
import asyncio

import perdure


@perdure.orchestration(name="Spin")
async def spin(ctx):
    while True:
        pass


@perdure.orchestration(name="Quick")
async def quick(ctx, value):
    return value + 1


async def main(url):
    rt = perdure.Runtime(
        url, orchestrations=[spin, quick], poll_interval=0.05, turn_timeout=0.3
    )
    async with rt:
        await rt.client.start_orchestration("spin", "Spin")
        spun = await rt.client.wait_for_orchestration("spin", timeout=20)
        await rt.client.start_orchestration("quick", "Quick", 41)
        done = await rt.client.wait_for_orchestration("quick", timeout=20)
    print(spun.status, spun.error.type, done.status, done.output, flush=True)


asyncio.run(main(sys.argv[1]))
"""


def run_traced(body: str, *args: str, seconds: float = 30) -> str:
    """Run *body* under a trace function in a fresh interpreter; its stdout."""
    script = textwrap.dedent(_TRACED) + textwrap.dedent(body)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script, *args],
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the traced process hung (no exit within {seconds} s)")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_stopped_turn_leaves_a_traced_interpreter_running() -> None:
    assert run_traced(_WATCHDOG_ONLY) == "stopped True 1"


def test_a_traced_runtime_stops_a_runaway_turn_and_goes_on(storage_url: str) -> None:
    out = run_traced(_RUNTIME, storage_url)
    assert out == "Failed TurnTimeout Completed 42"


def test_a_signal_handler_error_during_cancel_is_raised_after_it() -> None:
    # A Python signal handler runs before a pending async exception is
    # taken; its exception must reach the caller, and nothing stay pending.
    assert threading.current_thread() is threading.main_thread()

    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted

    real = _watchdog._set_async_exc

    def deliver_then_set(tid: int, exc: type[BaseException]) -> int:
        # The signal was blocked: unblocking it runs the handler at the next
        # check, before the cancelling exception is even set.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        return int(real(tid, exc))

    watchdog = TurnWatchdog(3600.0)
    watchdog.start()
    turn = watchdog.begin("interrupted")
    previous = signal.signal(signal.SIGUSR1, handler)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        signal.raise_signal(signal.SIGUSR1)  # pending while blocked
        _watchdog._set_async_exc = deliver_then_set  # type: ignore[assignment]
        turn.injected = 1  # as if an injection were pending
        with pytest.raises(Interrupted):
            watchdog.end(turn)
        for _ in range(1000):
            pass
    finally:
        watchdog.close()
        _watchdog._set_async_exc = real
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        signal.signal(signal.SIGUSR1, previous)


def test_an_injection_made_as_the_turn_ends_is_cancelled_not_raised() -> None:
    # The watchdog fires while the loop thread waits for its lock in `end`:
    # the turn finished, so the RunawayTurn must never land.
    watchdog = TurnWatchdog(3600.0)
    watchdog.start()
    loop_tid = threading.get_ident()
    turn = watchdog.begin("finishing")
    held = threading.Event()

    def inject_while_end_waits() -> None:
        with watchdog._lock:
            held.set()
            for _ in range(2000):  # until the loop thread blocks in `end`
                frame = sys._current_frames().get(loop_tid)
                if frame is not None and frame.f_code.co_name == "end":
                    break
                time.sleep(0.005)
            turn.injected += 1
            _watchdog._set_async_exc(loop_tid, RunawayTurn)

    helper = threading.Thread(target=inject_while_end_waits)
    helper.start()
    try:
        held.wait(WAIT)
        watchdog.end(turn)  # blocks on the lock until the injection is made
        for _ in range(1000):  # a pending exception would land here
            pass
    finally:
        helper.join(WAIT)
        watchdog.close()
    assert turn.injected == 1
