"""`Client`: start, signal, cancel, query and wait for orchestration instances."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast, overload

from . import _messages as m
from ._client_queries import ClientQueries
from ._client_retry import DEFAULT_RETRY_TIMEOUT, Retry, client_provider
from ._client_schedules import ClientSchedules
from ._client_types import IfExists, StartSpec, unix_time
from ._codec import loads, to_json
from ._core._history import event_from_json
from ._errors import InstanceExists, InstanceNotFound, PerdureError
from ._names import check_name
from ._registry import name_of
from ._retry import seconds
from ._state import OrchestrationState, decode_output
from ._telemetry import get as telemetry
from .events import AnyEvent
from .providers._base import (
    InstanceRecord,
    NewInstance,
    Provider,
)

__all__ = ["Client"]

T = TypeVar("T")

_NO_SPAN = contextlib.nullcontext()


class Client(ClientSchedules, ClientQueries):
    """Talks to orchestration instances through storage.

    Args:
        storage: A storage URL (``sqlite:///perdure.db``,
            ``postgresql://...``) or a provider object.
        retry_timeout: Seconds each call keeps retrying connection-level
            storage errors (a failover, a restart) before it raises
            `StorageError`; starts and events stay exactly-once.

    A `Runtime` exposes one on the same storage as ``rt.client``. A
    stand-alone client opens its storage on first use; close it with
    ``await client.close()`` or ``async with Client(...)``.
    """

    def __init__(
        self, storage: str | Provider, *, retry_timeout: float = DEFAULT_RETRY_TIMEOUT
    ) -> None:
        self._storage = storage
        self._retry = Retry(retry_timeout)
        self._provider: Provider | None = None
        self._owns_provider = isinstance(storage, str)
        self._lock = asyncio.Lock()
        self._tel = telemetry()

    @classmethod
    def _shared(cls, provider: Provider) -> Client:
        client = cls(provider)
        client._provider = provider
        client._owns_provider = False
        return client

    async def _store(self) -> Provider:
        if self._provider is None:
            async with self._lock:
                if self._provider is None:
                    provider = client_provider(self._storage)
                    await self._retry.call(provider.open)
                    self._provider = provider
        return self._provider

    async def close(self) -> None:
        """Close the storage this client opened (a shared one is left open)."""
        if self._provider is not None and self._owns_provider:
            await self._provider.close()
        self._provider = None

    async def __aenter__(self) -> Client:
        await self._store()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _get(self, store: Provider, instance_id: str) -> InstanceRecord | None:
        return await self._retry.call(lambda: store.get_instance(instance_id))

    # ------------------------------------------------------------- commands
    async def start_orchestration(
        self,
        instance_id: str,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        version: str | None = None,
        start_at: datetime | float | None = None,
        if_exists: IfExists = "error",
    ) -> None:
        """Create instance *instance_id* running orchestration *name*.

        Args:
            instance_id: The new instance's id.
            name: The orchestration (registered name or decorated function).
            input: Its input (JSON-serialisable).
            version: Its version; ``None`` for the latest registered.
            start_at: Start it at this time (a timezone-aware datetime or
                Unix seconds) instead of now. Until then it is ``Running``
                with an empty history; cancelling or deleting it meanwhile
                works as for any running instance.
            if_exists: ``"error"`` (default): a taken id raises
                `InstanceExists`; ``"ignore"``: the call does nothing when
                the instance exists (whatever its status), so repeating a
                start is safe.

        Raises:
            InstanceExists: The id is already used and *if_exists* is
                ``"error"`` (nothing is changed).
            PayloadError: *input* is not serialisable (nothing is stored).
            ValueError: *instance_id* is not a usable id (empty, not a str,
                over 512 characters, NUL, a lone surrogate), a naive
                *start_at*, or an unknown *if_exists*.
        """
        if if_exists not in ("error", "ignore"):
            raise ValueError(
                f"if_exists must be 'error' or 'ignore', not {if_exists!r}"
            )
        tel = self._tel
        with tel.start(instance_id, name) if tel is not None else _NO_SPAN:
            new = self._new_instance(instance_id, name, input, version, start_at)
            store = await self._store()
            try:
                await self._retry.create(store, new)
            except InstanceExists:
                if if_exists == "error":
                    raise

    def _new_instance(
        self,
        instance_id: str,
        name: str | Callable[..., Any],
        input: Any,
        version: str | None,
        start_at: datetime | float | None = None,
    ) -> NewInstance:
        _check_id(instance_id)
        orch = name_of(name)
        _check_id(orch, "orchestration name")
        payload = to_json(input, f"input of orchestration {orch!r}")
        body = {"name": orch, "version": version, "input": payload, "execution_id": 1}
        # The current trace context: the instance's spans join its trace.
        trace = self._tel.carrier() if self._tel is not None else None
        if trace is not None:
            body["trace"] = trace
        start = m.message(m.START, body, visible_at=unix_time(start_at, "start_at"))
        return NewInstance(
            instance_id=instance_id, name=orch, version=version or "", start=start
        )

    async def raise_event(
        self,
        instance_id: str,
        name: str,
        data: Any = None,
        *,
        start: StartSpec | None = None,
    ) -> None:
        """Deliver external event *name* to an instance (buffered until waited for).

        Args:
            instance_id: The instance.
            name: The event name.
            data: The event data (JSON-serialisable).
            start: Signal-with-start: if the instance does not exist, start
                it as *start* says, then deliver the event (its first turn
                sees it buffered). Callers racing on one id create one
                instance, and every event is delivered, exactly once.

        Raises:
            InstanceNotFound: Unknown instance (and no *start*).
            PayloadError: *data* (or the start's input) is not serialisable.
            ValueError: *name* is not a usable event name (empty, not a
                str, too long, NUL).
        """
        _check_id(name, "event name")
        payload = to_json(data, f"data of event {name!r}")
        new = (
            None
            if start is None
            else self._new_instance(instance_id, start.name, start.input, start.version)
        )
        store = await self._store()
        event = m.message(m.EVENT_RAISED, {"name": name, "data": payload})
        try:
            await self._retry.enqueue(store, instance_id, event)
            return
        except InstanceNotFound:
            if new is None:
                raise
        # Not there yet: create it (or lose the race to another starter,
        # which is as good), then deliver.
        with contextlib.suppress(InstanceExists):
            await self._retry.create(store, new)
        await self._retry.enqueue(store, instance_id, event)

    async def cancel_instance(self, instance_id: str, reason: str = "") -> None:
        """Cancel a running instance and everything it has in flight.

        A no-op on a finished instance. A ``Suspended`` instance keeps the
        request with its other messages and is cancelled when resumed.

        Raises:
            InstanceNotFound: Unknown instance.
        """
        store = await self._store()
        record = await self._get(store, instance_id)
        if record is None:
            raise InstanceNotFound(instance_id)
        if record.status not in ("Running", "Suspended"):
            return
        message = m.message(m.CANCEL, {"reason": reason})
        await self._retry.enqueue(store, instance_id, message)

    async def resume(self, instance_id: str) -> None:
        """Resume a ``Suspended`` instance with the code deployed now.

        Its next turn replays its history and delivers the messages it kept,
        as if it had never stopped (DESIGN §9). If the code still fails the
        same way, it is suspended again with the new error.

        Raises:
            InstanceNotFound: Unknown instance.
            PerdureError: The instance is not ``Suspended`` (its status is
                named); nothing changes.
        """
        store = await self._store()
        done, again = await self._retry.run(lambda: store.resume_instance(instance_id))
        if done:
            return
        record = await self._get(store, instance_id)
        if again and record is not None and record.status == "Running":
            return  # an attempt whose answer was lost resumed it
        if record is None:
            raise InstanceNotFound(instance_id)
        raise PerdureError(
            f"instance {instance_id!r} is {record.status}, not Suspended: "
            "only a suspended instance can be resumed"
        )

    async def rewind(self, instance_id: str) -> None:
        """Take a ``Failed`` instance back to before its failure and resume it.

        Its next turn replays its history with the code deployed now,
        skipping the failure: the ``OrchestrationFailed`` event stays in the
        history, marked as rewound by an ``ExecutionRewound`` event, and so
        do the cancellations the failure made. The code goes on from the
        step that failed; activities and timers still open are sent again,
        and children that ended meanwhile report their outcome (DESIGN §9).
        If the code fails again, the instance is ``Failed`` again (or
        ``Suspended``, on nondeterminism); it can be rewound again.

        Raises:
            InstanceNotFound: Unknown instance.
            PerdureError: The instance is not ``Failed`` (its status is
                named); nothing changes.
        """
        store = await self._store()
        record = await self._get(store, instance_id)
        if record is None:
            raise InstanceNotFound(instance_id)
        if record.status == "Failed":
            message = m.Rewind(record.execution_id).message()
            done, again = await self._retry.run(
                lambda: store.rewind_instance(instance_id, message)
            )
            if done:
                return
            record = await self._get(store, instance_id)
            if again and record is not None and record.status == "Running":
                return  # an attempt whose answer was lost rewound it
            if record is None:
                raise InstanceNotFound(instance_id)
        raise PerdureError(
            f"instance {instance_id!r} is {record.status}, not Failed: "
            "only a failed instance can be rewound"
        )

    async def delete_instance(self, instance_id: str, *, force: bool = False) -> None:
        """Delete an instance with its history, and its sub-orchestrations.

        Sub-orchestrations (recursively) are deleted with it, whatever their
        status, so that none keeps running and, should the id be re-used,
        delivers an old result to the new instance. *force* is needed only
        when the instance itself is still running.

        Raises:
            InstanceNotFound: Unknown instance.
            PerdureError: The instance is running and *force* is false.
        """
        store = await self._store()
        record = await self._get(store, instance_id)
        if record is None:
            raise InstanceNotFound(instance_id)
        if record.status == "Running" and not force:
            raise PerdureError(
                f"instance {instance_id!r} is still running; cancel it first "
                "or pass force=True"
            )
        await self._retry.call(lambda: store.delete_instance(instance_id))

    # -------------------------------------------------------------- queries
    async def get_status(self, instance_id: str) -> OrchestrationState | None:
        """Return the instance's state, or ``None`` if it does not exist."""
        store = await self._store()
        record = await self._get(store, instance_id)
        return OrchestrationState.from_record(record) if record is not None else None

    async def get_values(self, instance_id: str) -> dict[str, Any]:
        """Return the instance's values (``ctx.set_value``), as JSON values.

        Read from the instance's row, without running the orchestration:
        what its last committed turn left, in any status (a finished
        instance keeps its last values). Empty if none were set.

        Raises:
            InstanceNotFound: Unknown instance.
        """
        store = await self._store()
        text = await self._retry.call(lambda: store.read_values(instance_id))
        if text is None:
            raise InstanceNotFound(instance_id)
        values: dict[str, Any] = loads(text)
        return values

    @overload
    async def wait_for_orchestration(
        self,
        instance_id: str,
        timeout: float | timedelta = ...,
        *,
        result_type: type[T],
    ) -> OrchestrationState[T]: ...
    @overload
    async def wait_for_orchestration(
        self,
        instance_id: str,
        timeout: float | timedelta = ...,
        *,
        result_type: Any = ...,
    ) -> OrchestrationState[Any]: ...
    async def wait_for_orchestration(
        self,
        instance_id: str,
        timeout: float | timedelta = 60.0,
        *,
        result_type: Any = None,
    ) -> OrchestrationState[Any]:
        """Wait until the instance is Completed, Failed or Cancelled.

        Args:
            instance_id: The instance to wait for.
            timeout: Seconds (or a `timedelta`) to wait at most.
            result_type: Decode the output as this type: a dataclass, a
                pydantic model, or any hint activity results accept
                (``list[Order]``, an enum, ``datetime``...). The returned
                state is then an ``OrchestrationState[result_type]``. By
                default the output is left as JSON values.

        Raises:
            TimeoutError: Still running after *timeout* seconds.
            InstanceNotFound: Unknown instance.
            PayloadError: The output does not decode as *result_type*.
        """
        state = await self._wait(instance_id, timeout)
        return state if result_type is None else decode_output(state, result_type)

    async def _wait(
        self, instance_id: str, timeout: float | timedelta
    ) -> OrchestrationState:
        store = await self._store()
        deadline = time.monotonic() + seconds(timeout, "timeout")
        pause = 0.002
        while True:
            record = await self._retry.call(
                lambda: store.get_instance(instance_id), deadline=deadline
            )
            if record is None:
                raise InstanceNotFound(instance_id)
            if record.status != "Running":
                return OrchestrationState.from_record(record)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"instance {instance_id!r} still running after {timeout} s"
                )
            # Local writes wake us at once; the pause bounds cross-process lag.
            await store.wait("instances", min(pause, remaining))
            pause = min(pause * 2, 0.1)

    async def get_history(
        self, instance_id: str, execution_id: int | None = None
    ) -> list[AnyEvent]:
        """Return the history of an execution (the latest by default).

        Each event is one of the `perdure.events` classes, so ``match`` or
        ``isinstance`` narrows it to its fields.

        Raises:
            InstanceNotFound: Unknown instance.
            StorageError: A stored event is corrupted.
        """
        store = await self._store()
        if await self._get(store, instance_id) is None:
            raise InstanceNotFound(instance_id)
        rows = await self._retry.call(
            lambda: store.read_history(instance_id, execution_id)
        )
        # event_from_json builds one of the registered classes, which are
        # exactly AnyEvent's members (tests/test_exports.py pins that).
        return [cast("AnyEvent", event_from_json(row)) for row in rows]


def _check_id(instance_id: object, what: str = "instance_id") -> None:
    check_name(instance_id, what)
