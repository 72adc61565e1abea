"""Logging storage failures in the runtime's loops: one line per outage.

The runtime's loops (fetch, turn, commit, acknowledge, renew) retry every
failed storage call. When storage is unreachable (a failover, a restart, a
pooler hiccup: the provider marks those errors ``transient``), a traceback
per failed call would bury the log; `log_failure` writes one warning line
per loop and kind of call, then nothing more for that loop until
`QUIET_FOR` seconds have passed. Any other failure is logged with its
traceback, every time: it may be a bug.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["QUIET_FOR", "log_failure"]

#: Seconds during which a repeated transient failure of one loop is not
#: logged again.
QUIET_FOR = 60.0

_last: dict[str, float] = {}


def log_failure(
    log: logging.Logger, exc: BaseException, message: str, *args: Any
) -> None:
    """Log that a storage call of a retrying loop failed with *exc*.

    Args:
        log: The loop's logger.
        exc: The failure.
        message: What failed (``%``-format with *args*), e.g. "fetching
            activities failed; retrying"; it also names the loop for the
            once-per-outage rule.
        *args: Arguments of *message*.
    """
    if not getattr(exc, "transient", False):
        log.error(message, *args, exc_info=exc)
        return
    now = time.monotonic()
    key = f"{log.name}:{message}"
    if now - _last.get(key, -QUIET_FOR) < QUIET_FOR:
        return
    _last[key] = now
    log.warning(
        message + " (storage unavailable: %s; retrying quietly for %g s)",
        *args,
        exc,
        QUIET_FOR,
    )
