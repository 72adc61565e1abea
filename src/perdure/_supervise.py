"""Keeps the runtime's loops (dispatcher, activity worker) alive, or fails loudly.

A loop that dies with an unexpected exception would otherwise leave a
process that looks alive and does nothing (probe F4). `supervise` logs the
error with its traceback and restarts the loop after a short backoff; a
loop that keeps dying (`MAX_RESTARTS` within `WINDOW` seconds) fails the
runtime instead: `Runtime.failed` is set, `Runtime.wait` and
`Runtime.shutdown` raise `RuntimeFailed`, and ``perdure worker`` exits
non-zero.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ._errors import PerdureError
from ._watchdog import RunawayTurn

__all__ = ["MAX_RESTARTS", "WINDOW", "RuntimeFailed", "supervise"]

_log = logging.getLogger("perdure.runtime")

# Restarts of one loop allowed within WINDOW seconds before the runtime fails.
MAX_RESTARTS = 5
WINDOW = 60.0
# First restart delay; doubles with each recent restart, up to MAX_BACKOFF.
BACKOFF = 0.2
MAX_BACKOFF = 5.0


class RuntimeFailed(PerdureError):
    """The runtime stopped working: a loop kept dying, or a turn could not be stopped.

    The original error, if any, is its ``__cause__``.
    """

    category = "infrastructure"


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    stopping: Callable[[], bool],
    fail: Callable[[RuntimeFailed], None],
) -> None:
    """Run ``run()`` until it returns, restarting it when it dies.

    Args:
        name: The loop's name, for logs and errors.
        run: Starts the loop (called again for each restart).
        stopping: True once the runtime is shutting down (no restart then).
        fail: Called once with the error when restarts are exhausted.
    """
    restarts: deque[float] = deque()
    while True:
        try:
            await run()
            return
        except (Exception, RunawayTurn) as exc:
            if stopping():
                raise
            now = time.monotonic()
            while restarts and restarts[0] < now - WINDOW:
                restarts.popleft()
            if len(restarts) >= MAX_RESTARTS:
                _log.critical(
                    "the %s loop died %d times within %.0f s; the runtime has failed",
                    name,
                    len(restarts) + 1,
                    WINDOW,
                    exc_info=exc,
                )
                error = RuntimeFailed(
                    f"the {name} loop kept dying ({len(restarts) + 1} times "
                    f"within {WINDOW:.0f} s); last error: {type(exc).__name__}: {exc}"
                )
                error.__cause__ = exc
                fail(error)
                return
            delay = min(BACKOFF * 2 ** len(restarts), MAX_BACKOFF)
            restarts.append(now)
            _log.error(
                "the %s loop died; restarting it in %.1f s", name, delay, exc_info=exc
            )
            await asyncio.sleep(delay)
            if stopping():
                return
