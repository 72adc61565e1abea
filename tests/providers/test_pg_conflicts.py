"""A deadlock or serialization failure is retryable, not a failure (issue 17).

Concurrent starts of one instance id (signal-with-start from several
callers) can deadlock in PostgreSQL: one start waits in the unique index
for another, which waits for a row the first holds. PostgreSQL rolls the
victim's transaction back, so its write surely did not apply and running it
again is safe. The CI run of this session hit it once in
``test_signal_with_start_races_create_one_instance_and_lose_no_event``
(about 1 run in 25 on the previous engine too); it reached the caller as a
plain `StorageError`. Here the same cycle is built on purpose.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from psycopg import errors as pg_errors

import perdure
from perdure.providers._pg_conn import TransientStorageError, storage_error
from perdure.providers._pg_sql import create_params
from perdure.providers.conformance import Kit
from perdure.providers.postgres import PostgresProvider


def test_conflicts_map_to_retryable_errors_that_did_not_apply() -> None:
    for exc in (
        pg_errors.DeadlockDetected("deadlock detected"),
        pg_errors.SerializationFailure("could not serialize access"),
    ):
        error = storage_error("db", exc, sent=True)
        assert isinstance(error, TransientStorageError)
        assert error.transient and not error.maybe_applied
    # A statement the server rejected for its content stays a plain error.
    plain = storage_error("db", pg_errors.UniqueViolation("duplicate"), sent=True)
    assert not isinstance(plain, TransientStorageError)


async def _hold_and_deadlock(
    pg_url: str, runtime: PostgresProvider, iid: str, started: asyncio.Event
) -> None:
    """Insert *iid* in an open transaction, then wait for a start to block on
    it and lock the home row it holds FOR SHARE: a deadlock, whose victim is
    the start (it waited first). Then roll back."""
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        await conn.execute(
            runtime._sql.create_instance,
            {**create_params(Kit.new(iid)), **runtime._wake_params},
        )
        started.set()
        await asyncio.sleep(0.3)  # the start is now waiting in the index
        await conn.execute(
            f'SELECT 1 FROM "{runtime.schema}".runtimes WHERE origin = %s FOR UPDATE',
            (runtime._origin,),
        )
        await conn.rollback()


async def test_a_start_caught_in_a_deadlock_is_retried_by_the_client(
    pg_url: str,
) -> None:
    schema = f"perdure_dl_{uuid.uuid4().hex[:10]}"
    runtime = PostgresProvider(pg_url, schema=schema)
    await runtime.open()
    try:
        assert await runtime.fetch_orchestrations(10, 30.0) == []  # announced
        # The provider call alone: the deadlock is a retryable error that
        # did not apply.
        started = asyncio.Event()
        holder = asyncio.create_task(
            _hold_and_deadlock(pg_url, runtime, "dl-1", started)
        )
        await started.wait()
        try:
            await runtime.create_instance(Kit.new("dl-1"))
        except TransientStorageError as exc:
            assert not exc.maybe_applied
            assert "deadlock" in str(exc)
        else:
            raise AssertionError("the start was not the deadlock's victim")
        await holder
        assert await runtime.get_instance("dl-1") is None
        # Through the client: it runs the start again, once.
        started = asyncio.Event()
        holder = asyncio.create_task(
            _hold_and_deadlock(pg_url, runtime, "dl-2", started)
        )
        await started.wait()
        async with perdure.Client(runtime) as client:
            await client.start_orchestration("dl-2", "wf", 1)
            await holder
            record = await runtime.get_instance("dl-2")
            assert record is not None and record.status == "Running"
    finally:
        await runtime.drop_schema()
        await runtime.close()
