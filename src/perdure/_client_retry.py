"""`Client` calls that ride through a database outage (a failover, a restart).

A provider marks connection-level failures as retryable by raising a
`StorageError` whose ``transient`` attribute is true; ``maybe_applied`` says
whether the write may have committed before the connection broke (see
`perdure.providers._pg_conn.TransientStorageError`). `Retry` repeats a call
with backoff until its deadline and only then lets the error out.

Writes stay exactly-once across a retry: a start that finds its id taken
after an unknown outcome checks that the instance is the one it was
creating; messages (events, cancellations) go through the provider's
two-step ``enqueue_hidden``/``reveal`` when it has them, and otherwise are
retried only when they surely were not applied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._errors import InstanceExists, InstanceNotFound, StorageError
from .providers import open_provider
from .providers._base import Message, NewInstance, Provider

__all__ = ["DEFAULT_RETRY_TIMEOUT", "Retry", "client_provider"]

T = TypeVar("T")

#: Seconds a `Client` call keeps retrying connection-level errors.
DEFAULT_RETRY_TIMEOUT = 60.0


def client_provider(storage: str | Provider) -> Provider:
    """The provider for a client's storage, named as a client's when it can be."""
    provider = open_provider(storage)
    settings = getattr(provider, "settings", None)
    if isinstance(storage, str) and settings is not None:
        provider.settings = dataclasses.replace(settings, role="client")  # type: ignore[attr-defined]
    return provider


def transient(exc: BaseException) -> bool:
    """Whether *exc* is a connection-level storage error (worth retrying)."""
    return isinstance(exc, StorageError) and bool(getattr(exc, "transient", False))


class Retry:
    """Repeats storage calls that failed on a connection-level error.

    Args:
        timeout: Seconds each call may keep retrying (from its start).
    """

    def __init__(self, timeout: float = DEFAULT_RETRY_TIMEOUT) -> None:
        self.timeout = timeout

    async def run(
        self,
        op: Callable[[], Awaitable[T]],
        *,
        deadline: float | None = None,
        writes: bool = False,
    ) -> tuple[T, bool]:
        """Call *op* until it succeeds, fails for good, or the deadline passes.

        Args:
            op: The call.
            deadline: `time.monotonic` deadline (default: now + timeout).
            writes: *op* is not idempotent: an attempt that may have been
                applied is not repeated (its error is raised).

        Returns:
            The result and whether an earlier attempt may have been applied.

        Raises:
            StorageError: Not transient, or still failing at the deadline.
        """
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        delay = 0.05
        ambiguous = False
        started = time.monotonic()
        while True:
            try:
                return await op(), ambiguous
            except StorageError as exc:
                if not transient(exc):
                    raise
                applied = bool(getattr(exc, "maybe_applied", True))
                if writes and applied:
                    raise
                ambiguous = ambiguous or applied
                if time.monotonic() + delay > deadline:
                    raise StorageError(
                        f"{exc} (still failing after"
                        f" {time.monotonic() - started:.1f} s of retries)"
                    ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def call(
        self, op: Callable[[], Awaitable[T]], *, deadline: float | None = None
    ) -> T:
        """`run` for idempotent calls: the result only."""
        return (await self.run(op, deadline=deadline))[0]

    async def create(self, store: Provider, new: NewInstance) -> None:
        """Create an instance exactly once.

        Raises:
            InstanceExists: The id was taken by someone else.
        """
        ambiguous = False

        async def attempt() -> None:
            nonlocal ambiguous
            try:
                await store.create_instance(new)
            except InstanceExists:
                if ambiguous and await self._is_ours(store, new):
                    return  # our earlier attempt committed
                raise
            except StorageError as exc:
                ambiguous = ambiguous or (
                    transient(exc) and bool(getattr(exc, "maybe_applied", True))
                )
                raise

        await self.call(attempt)

    async def _is_ours(self, store: Provider, new: NewInstance) -> bool:
        record = await self.call(lambda: store.get_instance(new.instance_id))
        return (
            record is not None
            and record.name == new.name
            # "" asks for the latest version, which the first turn fills in.
            and (new.version == "" or record.version in (new.version, ""))
            and record.parent_instance_id == new.parent_instance_id
        )

    async def enqueue(
        self, store: Provider, instance_id: str, message: Message
    ) -> None:
        """Deliver *message* to an instance exactly once.

        Raises:
            InstanceNotFound: Unknown instance.
        """
        hide: Any = getattr(store, "enqueue_hidden", None)
        reveal: Any = getattr(store, "reveal", None)
        if hide is None or reveal is None:
            await self.run(lambda: store.enqueue(instance_id, message), writes=True)
            return
        key = f"once:{uuid.uuid4().hex}"
        # Hidden for longer than this call may retry, so no turn consumes it
        # before we know it is there; if we give up, it shows up then.
        hold = self.timeout + 60.0
        found = await self.call(lambda: hide(instance_id, message, key, hold))
        if not found:
            raise InstanceNotFound(instance_id)
        await self.call(lambda: reveal(instance_id, key))
