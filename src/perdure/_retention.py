"""Automatic purging of finished instances (``Runtime(retention=...)``, §10).

The loop deletes, every `interval` seconds, the top-level instances that
ended (Completed, Failed, Cancelled) more than *retention* ago on the
storage's clock, with their sub-orchestrations, in batches of one
transaction each. Several runtimes may run it on one database: a purge
skips rows another one is deleting (PostgreSQL) or waits for it (SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ._client_types import FINISHED
from ._outage import log_failure
from .providers._base import Provider

__all__ = ["Retention", "interval_for"]

_log = logging.getLogger("perdure.runtime")
_BATCH = 1000


def interval_for(retention: float) -> float:
    """How often to purge: a tenth of the retention, from 1 s to 5 minutes."""
    return min(max(retention / 10, 1.0), 300.0)


class Retention:
    """The purge loop of one runtime."""

    def __init__(self, provider: Provider, retention: float) -> None:
        self._provider = provider
        self.retention = retention
        self.interval = interval_for(retention)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Make `run` return at its next wait."""
        self._stop.set()

    async def run(self) -> None:
        """Purge, wait `interval` (or until stopped), repeat."""
        self._stop.clear()
        while not self._stop.is_set():
            try:
                await self.purge_once()
            except Exception as exc:
                log_failure(_log, exc, "purging finished instances failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def purge_once(self) -> int:
        """Delete what is past retention now; return how many instances."""
        before = self._provider.clock() - self.retention
        total = 0
        while not self._stop.is_set():
            count = await self._provider.purge_instances(
                statuses=FINISHED, finished_before=before, limit=_BATCH
            )
            total += count
            if count < _BATCH:
                break
        if total:
            _log.info(
                "purged %d finished instances (retention %g s)", total, self.retention
            )
        return total
