"""PostgreSQL provider specifics the conformance suite does not cover.

Wake-ups across provider objects (LISTEN/NOTIFY, per schema, surviving a
dropped listener connection), the ``schema`` URL parameter, concurrent
migrations, instance affinity, and the commit and fetch fallback paths.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from perdure.providers import (
    Message,
    NewInstance,
    OrchestrationItem,
    TurnCommit,
    open_provider,
)

pytest.importorskip("psycopg")
from perdure.providers.helpers import load_migrations
from perdure.providers.postgres import PostgresProvider

pytestmark = pytest.mark.postgres

LEASE = 5.0


def _url() -> str:
    url = os.environ.get("PERDURE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PERDURE_TEST_POSTGRES_URL is not set")
        pytest.skip("PERDURE_TEST_POSTGRES_URL is not set")
    return url


def _schema() -> str:
    return f"perdure_pgt_{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def providers(
    count: int = 1, schema: str | None = None, **kw: Any
) -> AsyncIterator[list[PostgresProvider]]:
    """*count* open provider objects on one fresh schema (dropped afterwards)."""
    url, schema = _url(), schema or _schema()
    made = [PostgresProvider(url, schema=schema, **kw) for _ in range(count)]
    try:
        await asyncio.gather(*(p.open() for p in made))
        yield made
    finally:
        try:
            await made[0].drop_schema()
        finally:
            for p in made:
                await p.close()


def new(instance_id: str) -> NewInstance:
    start = Message(kind="start", body=json.dumps(instance_id))
    return NewInstance(instance_id=instance_id, name="wf", version="1", start=start)


def turn(item: OrchestrationItem, *labels: str, **kw: Any) -> TurnCommit:
    start = item.history_len
    events = [(start + 1 + i, json.dumps(label)) for i, label in enumerate(labels)]
    kw.setdefault("consumed", [m.id for m in item.messages])
    return TurnCommit(
        instance_id=item.instance.instance_id,
        lock_token=item.lock_token,
        execution_id=item.instance.execution_id,
        history_start=start,
        events=events,
        **kw,
    )


async def elapsed(awaitable: Awaitable[object]) -> float:
    started = time.monotonic()
    await awaitable
    return time.monotonic() - started


# --- URLs and schemas ------------------------------------------------------


def test_schema_comes_from_the_url_or_the_keyword() -> None:
    url = "postgresql://u@h:5432/db?sslmode=disable&schema=app_one"
    provider = PostgresProvider(url)
    assert provider.schema == "app_one"
    assert (
        "schema" not in provider._conninfo and "sslmode=disable" in provider._conninfo
    )
    assert PostgresProvider("postgresql://u@h/db", schema="two").schema == "two"
    assert PostgresProvider("postgres://u@h/db").schema == "perdure"
    assert PostgresProvider(url, schema="app_one").schema == "app_one"
    with pytest.raises(ValueError, match="schema"):
        PostgresProvider(url, schema="other")
    options = "postgresql://u@h/db?options=-c%20work_mem%3D8MB&schema=s"
    assert PostgresProvider(options)._conninfo == options.replace("&schema=s", "")
    assert PostgresProvider("host=h dbname=d", schema="k").schema == "k"
    assert "secret" not in repr(PostgresProvider("postgresql://u:secret@h/db"))
    opened = open_provider(url)
    assert isinstance(opened, PostgresProvider) and opened.schema == "app_one"


async def test_url_schema_parameter_selects_the_schema() -> None:
    schema = _schema()
    url = _url()
    provider = open_provider(f"{url}{'&' if '?' in url else '?'}schema={schema}")
    await provider.open()
    try:
        await provider.create_instance(new("a"))
        async with providers(schema=schema) as (same,):
            assert await same.get_instance("a") is not None
        async with providers() as (elsewhere,):
            assert await elsewhere.get_instance("a") is None
    finally:
        await provider.close()


async def test_concurrent_first_opens_migrate_once() -> None:
    async with providers(6) as made:
        conn_provider = made[0]
        async with conn_provider._connection() as conn:
            cursor = await conn.execute(
                f'SELECT version FROM "{conn_provider.schema}".schema_version'
            )
            applied = [row[0] for row in await cursor.fetchall()]
        # Each migration exactly once, though six objects opened at once.
        assert applied == [v for v, _ in load_migrations("postgres")]


# --- wake-ups across objects -----------------------------------------------


async def test_notify_wakes_another_provider_object() -> None:
    async with providers(2) as (runtime, client):
        assert await runtime.fetch_orchestrations(10, LEASE) == []
        waiting = asyncio.ensure_future(elapsed(runtime.wait("orchestrations", 10)))
        await asyncio.sleep(0.1)
        await client.create_instance(new("a"))
        assert await waiting < 5
        [item] = await runtime.fetch_orchestrations(10, LEASE)

        watching = asyncio.ensure_future(elapsed(client.wait("instances", 10)))
        await asyncio.sleep(0.1)
        done = turn(item, "done", status="Completed", output="1")
        assert await runtime.commit_turns([done]) == [True]
        assert await watching < 5


async def test_other_schemas_do_not_wake_us() -> None:
    async with providers() as (ours,), providers() as (theirs,):
        await ours.fetch_orchestrations(10, LEASE)
        # The first wait on a kind starts listening to it and returns at
        # once (what came before was not heard); the second one waits.
        await ours.wait("orchestrations", 0.5)
        waiting = asyncio.ensure_future(elapsed(ours.wait("orchestrations", 0.5)))
        await asyncio.sleep(0.05)
        await theirs.create_instance(new("a"))
        assert await waiting >= 0.4


async def test_listener_reconnects_after_its_connection_dies() -> None:
    async with providers(2) as (runtime, client):
        listener = runtime._listener
        assert listener is not None

        def backend_pid() -> int | None:
            # Read afresh each time: the listener replaces its connection.
            conn = listener._conn
            return None if conn is None else conn.info.backend_pid

        pid = backend_pid()
        assert pid is not None
        async with client._connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(100):  # reconnected (it reports a wake-up then)
            if backend_pid() not in (None, pid):
                break
            await asyncio.sleep(0.05)
        await runtime.fetch_orchestrations(10, LEASE)
        waiting = asyncio.ensure_future(elapsed(runtime.wait("orchestrations", 10)))
        await asyncio.sleep(0.1)
        await client.create_instance(new("a"))
        assert await waiting < 5


# --- affinity -----------------------------------------------------------------


async def test_an_instance_sticks_to_its_last_runtime_for_a_while() -> None:
    async with providers(2, affinity=0.5) as (first, second):
        await first.create_instance(new("a"))
        [item] = await first.fetch_orchestrations(10, LEASE)
        assert await first.commit_turns([turn(item, "e1")]) == [True]
        await second.enqueue("a", Message(kind="ping", body="1"))
        assert await second.fetch_orchestrations(10, LEASE) == []
        await asyncio.sleep(0.6)
        [again] = await second.fetch_orchestrations(10, LEASE)
        # Abandoning gives the instance up at once.
        await second.abandon_orchestration("a", again.lock_token)
        [third] = await first.fetch_orchestrations(10, LEASE)
        assert third.instance.instance_id == "a"


# --- fallback paths -------------------------------------------------------------


async def test_a_turn_violating_a_constraint_is_rejected_alone() -> None:
    async with providers() as (p,):
        for name in ("a", "b", "c"):
            await p.create_instance(new(name))
        items = {
            i.instance.instance_id: i for i in await p.fetch_orchestrations(10, LEASE)
        }
        async with p._connection() as conn:  # a stray event where "b" will write
            await conn.execute(
                f'INSERT INTO "{p.schema}".history VALUES (%s, 1, 1, %s)', ("b", '"x"')
            )
        turns = [turn(items[name], f"{name}1") for name in ("a", "b", "c")]
        assert await p.commit_turns(turns) == [True, False, True]
        assert await p.read_history("a") == ['"a1"']
        assert await p.read_history("c") == ['"c1"']
        assert await p.read_history("b") == ['"x"']


async def test_two_turns_creating_one_child_in_a_batch() -> None:
    async with providers() as (p,):
        await p.create_instance(new("p1"))
        await p.create_instance(new("p2"))
        items = {
            i.instance.instance_id: i for i in await p.fetch_orchestrations(10, LEASE)
        }

        def child(parent: str) -> NewInstance:
            return dataclasses.replace(
                new("kid"),
                parent_instance_id=parent,
                on_conflict=Message(kind="sub_failed", body=json.dumps(parent)),
                on_conflict_target=parent,
            )

        turns = [turn(items[p], "e1", new_instances=[child(p)]) for p in ("p1", "p2")]
        assert await p.commit_turns(turns) == [True, True]
        record = await p.get_instance("kid")
        assert record is not None and record.parent_instance_id == "p1"
        ready = {
            i.instance.instance_id: i for i in await p.fetch_orchestrations(10, LEASE)
        }
        assert set(ready) == {"kid", "p2"}
        assert [m.kind for m in ready["p2"].messages] == ["sub_failed"]


async def test_fetch_rereads_messages_when_the_row_changed_under_it() -> None:
    async with providers() as (p,):
        await p.create_instance(new("a"))
        await p.enqueue("a", Message(kind="ping", body="1"))
        # Pretend a turn committed between the snapshot and the lock.
        sql = p._sql.fetch_orchestrations.replace("p.seen = p.now_seen", "false")
        p._sql = dataclasses.replace(p._sql, fetch_orchestrations=sql)
        [item] = await p.fetch_orchestrations(10, LEASE)
        assert [m.kind for m in item.messages] == ["start", "ping"]
        assert await p.commit_turns([turn(item, "e1")]) == [True]
        # And when nothing is left to deliver, the lock is given back.
        await p.enqueue("a", Message(kind="ping", body="2"))
        reread = p._sql.reread_messages.replace("GROUP BY", "AND false GROUP BY")
        p._sql = dataclasses.replace(p._sql, reread_messages=reread)
        assert await p.fetch_orchestrations(10, LEASE) == []
        record = await p.get_instance("a")
        assert record is not None
        async with p._connection() as conn:
            cursor = await conn.execute(
                f'SELECT lock_token, attempt FROM "{p.schema}".instances'
            )
            assert await cursor.fetchall() == [(None, 0)]


async def test_a_deadlocked_batch_is_retried_turn_by_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from psycopg import AsyncConnection, errors

    from perdure.providers import _pg_batch
    from perdure.providers._pg_commit_sql import CommitSql

    calls: list[list[int]] = []
    execute = _pg_batch._execute

    async def flaky(
        conn: AsyncConnection[Any],
        sql: CommitSql,
        wake: dict[str, str],
        turns: Sequence[TurnCommit],
        indexes: Sequence[int],
    ) -> set[int]:
        calls.append(list(indexes))
        if len(calls) <= 2:  # the batch, then the first turn alone
            raise errors.DeadlockDetected("deadlock detected (simulated)")
        return await execute(conn, sql, wake, turns, indexes)

    monkeypatch.setattr(_pg_batch, "_execute", flaky)
    async with providers() as (p,):
        for name in ("a", "b"):
            await p.create_instance(new(name))
        items = await p.fetch_orchestrations(10, LEASE)
        turns = [turn(item, "e1") for item in items]
        assert await p.commit_turns(turns) == [True, True]
        assert calls == [[0, 1], [0], [0], [1]]
        assert await p.read_history("a") == await p.read_history("b") == ['"e1"']


async def test_a_provider_listens_only_to_what_it_waits_for() -> None:
    # Every notification costs each backend listening on its channel a
    # transaction (issue 17): a client waiting for instances must not hear
    # the runtimes' orchestration and activity wake-ups, nor they its.
    async with providers(2) as (runtime, client):
        listener = client._listener
        assert listener is not None
        await client.wait("instances", 0.5)  # the first wait: starts listening
        assert listener.hears("instances")
        assert not listener.hears("orchestrations")
        assert not listener.hears("activities")
        # A targeted wake-up still reaches a runtime on its own channel.
        await runtime.fetch_orchestrations(10, LEASE)  # announces it
        await runtime.wait("orchestrations", 0.5)
        waiting = asyncio.ensure_future(elapsed(runtime.wait("orchestrations", 10)))
        await asyncio.sleep(0.1)
        await client.create_instance(new("homed"))
        assert await waiting < 5
