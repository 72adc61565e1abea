"""Logging for orchestration code: replay-safe, and what no code will see.

`ReplaySafeLogger` is ``ctx.logger``; `log_unobserved` reports, after each
new turn, what orchestration code cannot see for itself (DESIGN §8).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from ._core._driver import Driver

if TYPE_CHECKING:
    from ._context import OrchestrationContext

__all__ = ["ReplaySafeLogger", "log_unobserved"]

_log = logging.getLogger("perdure.orchestration")


class ReplaySafeLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that stays silent while history is being replayed."""

    def __init__(self, logger: logging.Logger, ctx: OrchestrationContext) -> None:
        super().__init__(logger, {})
        self._ctx = ctx

    def isEnabledFor(self, level: int) -> bool:
        return not self._ctx.is_replaying and self.logger.isEnabledFor(level)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self._ctx.instance_id}] {msg}", kwargs


def log_unobserved(driver: Driver) -> None:
    """Log the exceptions no orchestration code will see (DESIGN §8).

    Called after each new turn (never for replayed ones, so nothing is
    logged twice): an exception a task raised after it was cancelled, and
    failures of tasks nothing awaited by the time the execution ended.
    Logged at ERROR on ``perdure.orchestration``, with the traceback.
    """
    for scope, error, after_cancel in driver.take_unobserved():
        how = (
            "after the task was cancelled (its result is Cancelled)"
            if after_cancel
            else "and nothing awaited the task"
        )
        _log.error(
            "[%s] task scope %s raised %s %s",
            driver.instance_id,
            scope,
            type(error).__name__,
            how,
            exc_info=error,
        )
    for scope, reason in driver.take_refused():
        _log.warning(
            "[%s] task scope %s was cancelled (%s) and then started durable "
            "work, which raised Cancelled; work that must run after "
            "cancellation (compensation, cleanup) goes inside "
            "`async with ctx.shield():`",
            driver.instance_id,
            scope,
            reason,
        )
