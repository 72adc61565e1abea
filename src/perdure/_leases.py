"""`Leases`: the activity work items one worker holds, until their outcome is written.

An item is held (and its lease renewed) from its fetch until its outcome is
written: acknowledged, put back for a retry, or given back at shutdown; not
merely until the activity returns, so a slow acknowledgement never lets
another worker run finished work again (probe F8). Results are written in
batches by one flusher task: what is queued when it starts a write goes
together, so batches grow with load; each acknowledging task waits only
for its own result to be written, then ends and frees its worker slot.

Heartbeat details (``ctx.heartbeat(details)``) ride on the lease renewal:
each renewal also stores the details that changed since the last one, in
one batch, so an activity may heartbeat as often as it likes and storage
sees at most one write per renewal (a third of ``lock_timeout``). Before
an item is put back (retry) or given back (shutdown) its latest details
are stored too, so the next attempt always sees them; only a crash loses
the details of the last renewal interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from ._activity_context import ActivityContext
from ._outage import log_failure
from .providers._base import (
    ActivityHeartbeat,
    ActivityItem,
    ActivityResult,
    Message,
    Provider,
    SavesHeartbeats,
)

__all__ = ["Absorb", "Key", "Leases", "label"]

_log = logging.getLogger("perdure.worker")

#: Longest a shutdown waits to write results or give leases back.
EXIT_WRITES = 5.0

Key = tuple[str, int, int]

#: Writes results together with the turns they wake where it can (the
#: dispatcher's `absorb`); returns the results it did not write.
Absorb = Callable[[list[ActivityResult]], Awaitable[list[ActivityResult]]]


def key(item: ActivityItem) -> Key:
    """The item's identity across deliveries: instance, execution, event id."""
    return (item.instance_id, item.execution_id, item.event_id)


def label(item: ActivityItem) -> str:
    """How logs name an attempt."""
    return f"{item.name!r} (instance {item.instance_id}, attempt {item.attempt})"


class _Ack(NamedTuple):
    """A result waiting to be written, and the future its caller awaits."""

    item: ActivityItem
    result: ActivityResult
    written: asyncio.Future[None]


class Leases:
    """Held activity items: renewed, acknowledged in batches, or given back."""

    def __init__(
        self, provider: Provider, lock_timeout: float, absorb: Absorb | None = None
    ) -> None:
        self._provider = provider
        self._absorb = absorb
        self._lock_timeout = lock_timeout
        self._held: dict[Key, tuple[ActivityItem, ActivityContext]] = {}
        self._acks: list[_Ack] = []
        self._flusher: asyncio.Task[None] | None = None
        self._beats = provider if isinstance(provider, SavesHeartbeats) else None
        self._warned = False  # about a provider that cannot store details

    def hold(self, item: ActivityItem, ctx: ActivityContext) -> None:
        """Start renewing *item*'s lease."""
        self._held[key(item)] = (item, ctx)

    def context(self, at: Key) -> ActivityContext | None:
        """The context of the held item at *at*, if any."""
        entry = self._held.get(at)
        return entry[1] if entry is not None else None

    def release(self, item: ActivityItem) -> None:
        """Stop renewing *item*'s lease (unless its key was fetched again)."""
        at = key(item)
        entry = self._held.get(at)
        if entry is not None and entry[0] is item:
            del self._held[at]

    async def acknowledge(self, item: ActivityItem, message: Message) -> None:
        """Write *item*'s outcome (batched); its lease is renewed until then."""
        result = ActivityResult(
            id=item.id,
            lock_token=item.lock_token,
            instance_id=item.instance_id,
            message=message,
        )
        written = asyncio.get_running_loop().create_future()
        self._acks.append(_Ack(item, result, written))
        # One flusher task writes every pending result; each caller waits
        # for its own to be written. Flushing in the caller's own
        # task lost results: a caller cancelled mid-write (its lease
        # reported lost while its result was being written, then its grace
        # period ran out) put the batch back and left it, and every result
        # queued behind it, unwritten until the next acknowledgement, if any
        # came. Waiting for the flusher itself held every caller (and its
        # worker slot) until the flusher found nothing more to write, which
        # under steady load is one or more commits later. A caller cancelled
        # here cancels only *written*, its own notice: the flusher still
        # writes the result and skips the notice (`_written`), so no shield
        # is needed (it cost two callbacks a step).
        flusher = self._flusher
        if flusher is None or flusher.done():
            self._flusher = asyncio.create_task(self.flush())
        await written

    async def flush(self) -> None:
        """Write every pending result, retrying storage errors."""
        while self._acks:
            batch, self._acks = self._acks, []
            try:
                if self._absorb is not None:
                    # Results whose turn committed with them are written.
                    rest = await self._absorb([ack.result for ack in batch])
                    left = {id(result) for result in rest}
                    for ack in batch:
                        if id(ack.result) not in left:
                            self._written(ack)
                    batch = [ack for ack in batch if id(ack.result) in left]
                if batch:
                    results = [ack.result for ack in batch]
                    await self._provider.complete_activities(results)
            except asyncio.CancelledError:
                self._acks[:0] = batch  # shutdown flushes them
                raise
            except Exception as exc:
                log_failure(
                    _log,
                    exc,
                    "acknowledging %d activities failed; retrying",
                    len(batch),
                )
                self._acks[:0] = batch
                await asyncio.sleep(0.5)
            else:
                for ack in batch:
                    self._written(ack)

    def _written(self, ack: _Ack) -> None:
        """*ack*'s result is stored: stop renewing, let its caller go on."""
        self.release(ack.item)
        if not ack.written.done():
            ack.written.set_result(None)

    async def close(self) -> None:
        """At shutdown: write what finished, give back every other lease."""
        try:
            await asyncio.wait_for(self._drain(), EXIT_WRITES)
        except TimeoutError:
            _log.error(
                "shutdown: %d activity results could not be written; "
                "those activities will run again",
                len(self._acks),
            )
        await self.give_back([item for item, _ in self._held.values()])

    async def _drain(self) -> None:
        """Let the flusher finish, then write what is still pending."""
        flusher = self._flusher
        try:
            if flusher is not None and not flusher.done():
                await flusher
        finally:
            if flusher is not None and not flusher.done():
                flusher.cancel()  # timed out: its batch goes back to _acks
        await self.flush()

    async def give_back(self, items: Sequence[ActivityItem]) -> None:
        """Release *items* at once: another worker may run them now."""
        if not items:
            return
        await self.save_details(items)
        _log.warning(
            "shutdown: giving back the leases of unfinished activities: %s",
            ", ".join(label(item) for item in items),
        )
        calls = [
            self._provider.abandon_activity(item.id, item.lock_token, 0.0)
            for item in items
        ]
        try:
            async with asyncio.timeout(EXIT_WRITES):
                results = await asyncio.gather(*calls, return_exceptions=True)
        except TimeoutError:
            _log.error("shutdown: giving back activity leases timed out")
            return
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                _log.error("giving back %s failed: %r", label(item), result)
            else:
                self.release(item)

    async def renew_loop(self) -> None:
        """Renew every held lease each third of ``lock_timeout``, forever."""
        interval = max(self._lock_timeout / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            leases = [(item.id, item.lock_token) for item, _ in self._held.values()]
            if not leases:
                continue
            try:
                lost = set(
                    await self._provider.renew_activity_locks(
                        leases, self._lock_timeout
                    )
                )
            except Exception as exc:
                log_failure(_log, exc, "renewing activity leases failed")
                continue
            sent = dict(leases)
            for item, ctx in list(self._held.values()):
                # Only the attempt whose lease was sent: while the call ran,
                # the item may have been fetched again under a new token (its
                # lease expired), and that new attempt holds it now.
                if item.id in lost and sent.get(item.id) == item.lock_token:
                    ctx._cancel()
            await self.save_details([item for item, _ in self._held.values()])

    async def save_details(self, items: Sequence[ActivityItem]) -> None:
        """Store the heartbeat details of held *items* that changed, in one call.

        Never raises: a failure is logged, and the details are tried again
        with the next renewal.
        """
        pending: list[tuple[ActivityContext, int, ActivityHeartbeat]] = []
        for item in items:
            entry = self._held.get(key(item))
            if entry is None or entry[0] is not item:
                continue
            unsaved = entry[1]._unsaved_details()
            if unsaved is not None:
                seq, text = unsaved
                beat = ActivityHeartbeat(
                    id=item.id, lock_token=item.lock_token, details=text
                )
                pending.append((entry[1], seq, beat))
        if not pending:
            return
        if self._beats is None:
            if not self._warned:
                self._warned = True
                _log.warning(
                    "%r cannot store heartbeat details (it lacks"
                    " save_activity_heartbeats): retries will not see them",
                    self._provider,
                )
            return
        try:
            await self._beats.save_activity_heartbeats([b for _, _, b in pending])
        except Exception as exc:
            log_failure(_log, exc, "storing heartbeat details failed; retrying later")
            return
        for ctx, seq, _ in pending:
            ctx._saved = max(ctx._saved, seq)
