"""Log instances that wait for a runtime with their orchestration version.

They are not failed (DESIGN §9): they wait as Running and continue when a
runtime that registers their version starts. The dispatcher asks at most
every `_WAITING_AFTER` seconds, when it is idle, and logs each version once.
"""

from __future__ import annotations

import logging

from .providers._base import Provider

__all__ = ["WaitingLog"]

_log = logging.getLogger("perdure.dispatcher")

# How long an instance nobody here can run waits before it is logged, and
# how often that is checked: other runtimes may well have its version.
_WAITING_AFTER = 30.0


class WaitingLog:
    """Logs, once per version, instances no runtime seems to have code for."""

    def __init__(
        self, provider: Provider, handlers: tuple[tuple[str, str], ...] | None
    ) -> None:
        self._provider = provider
        self._handlers = handlers
        self._next_check = 0.0
        self._logged: set[tuple[str, str]] = set()

    async def check(self) -> None:
        """Count waiting instances if it is time, and log new versions."""
        handlers = self._handlers
        now = self._provider.clock()
        if handlers is None or now < self._next_check:
            return
        self._next_check = now + _WAITING_AFTER
        try:
            waiting = await self._provider.waiting_instances(handlers, _WAITING_AFTER)
        except Exception:
            _log.debug("counting waiting instances failed", exc_info=True)
            return
        mine = ", ".join(f"{n} {v!r}" for n, v in handlers) or "none"
        for name, version, count in waiting:
            if (name, version) in self._logged:
                continue
            self._logged.add((name, version))
            _log.warning(
                "%d instance(s) of orchestration %r version %r wait for a runtime "
                "that registers that version (this one has: %s); they stay "
                "Running and continue when such a runtime starts",
                count,
                name,
                version,
                mine,
            )
