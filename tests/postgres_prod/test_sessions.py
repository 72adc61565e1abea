"""Session limits, application_name, least privileges, and client retries.

On the test database: an outside transaction holding an instance's row lock
costs only calls on that instance a `StorageError` (``lock_timeout`` /
``statement_timeout``), never the runtime; every session says who it is in
``application_name``; the runtime needs no more than ownership of its
schema; and the client's retries keep starts and events exactly-once when
the answer to a write is lost.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

import psycopg
import pytest
from _app import ACTIVITIES, ORCHESTRATIONS
from _servers import pg_url

import perdure
from perdure.providers import _pg_raw as raw
from perdure.providers._base import Message, NewInstance
from perdure.providers._pg_conn import TransientStorageError
from perdure.providers.postgres import PostgresProvider

pytestmark = [pytest.mark.postgres]


def _schema() -> str:
    return f"perdure_sess_{uuid.uuid4().hex[:10]}"


async def _drop(schema: str) -> None:
    provider = PostgresProvider(pg_url(), schema=schema)
    await provider.open()
    try:
        await provider.drop_schema()
    finally:
        await provider.close()


@pytest.mark.parametrize("limit", ["lock_wait_timeout", "statement_timeout"])
def test_outside_lock_costs_one_instance_a_retry(limit: str) -> None:
    schema = _schema()

    async def main() -> None:
        provider = PostgresProvider(
            pg_url(),
            schema=schema,
            lock_wait_timeout=0.5 if limit == "lock_wait_timeout" else 0.0,
            statement_timeout=0.5 if limit == "statement_timeout" else 0.0,
        )
        # A turn whose commit is cut is retried once its lease (2 s) ends.
        async with perdure.Runtime(
            provider,
            orchestrations=ORCHESTRATIONS,
            activities=ACTIVITIES,
            lock_timeout=2.0,
        ) as rt:
            client = rt.client
            await client.start_orchestration("stuck", "until_event", "go")
            conn = await psycopg.AsyncConnection.connect(pg_url())
            try:
                await conn.execute(
                    f'SELECT 1 FROM "{schema}".instances'
                    " WHERE instance_id = 'stuck' FOR UPDATE"
                )
                # Deleting needs that row: cut by the limit, not hung.
                with pytest.raises(perdure.StorageError, match="timeout"):
                    await asyncio.wait_for(
                        client.delete_instance("stuck", force=True), 20
                    )
                # The locked instance's event waits; everything else goes on.
                await client.raise_event("stuck", "go", 2)
                await client.start_orchestration("free", "chain", 1)
                state = await client.wait_for_orchestration("free", 20)
                assert state.output == 4
            finally:
                await conn.rollback()
                await conn.close()
            state = await client.wait_for_orchestration("stuck", 20)
            assert state.output == 2
        await provider.drop_schema()
        await provider.close()  # the runtime does not own it

    asyncio.run(main())


def test_sessions_are_named() -> None:
    schema = _schema()

    async def main() -> None:
        provider = PostgresProvider(pg_url(), schema=schema)
        await provider.open()
        try:
            async with perdure.Client(f"{pg_url()}?schema={schema}") as client:
                await client.get_status("x")
                conn = await psycopg.AsyncConnection.connect(pg_url())
                try:
                    cursor = await conn.execute(
                        "SELECT application_name FROM pg_stat_activity"
                        " WHERE application_name LIKE 'perdure-%%'"
                    )
                    names = {row[0] for row in await cursor.fetchall()}
                finally:
                    await conn.close()
            await provider.drop_schema()
        finally:
            await provider.close()
        host = socket.gethostname()
        for role in ("runtime", "listen", "client"):
            assert f"perdure-{role}-{host}-{os.getpid()}"[:63] in names, names

    asyncio.run(main())


async def _plans(url: str, schema: str) -> tuple[int, int]:
    """(custom, generic) plans of a statement run 8 times on a provider session."""
    provider = PostgresProvider(url, schema=schema)
    await provider.open()
    try:
        async with provider._connection(kept=True) as conn:
            for i in range(8):
                await raw.fetch(conn, "SELECT %(x)s::int + 1", {"x": i})
            cursor = await conn.execute(
                "SELECT coalesce(sum(custom_plans), 0), coalesce(sum(generic_plans), 0)"
                " FROM pg_prepared_statements WHERE statement LIKE '%%::int + 1'"
            )
            row = await cursor.fetchone()
            assert row is not None
            return int(row[0]), int(row[1])
    finally:
        await provider.drop_schema()
        await provider.close()


def test_sessions_plan_once_unless_the_url_says_otherwise() -> None:
    # A provider's prepared statement is planned once per prepare, not at
    # each of its first executions (0.4-0.9 ms of server CPU each); a
    # plan_cache_mode in the URL's own options wins.
    custom, generic = asyncio.run(_plans(pg_url(), _schema()))
    assert (custom, generic) == (0, 8)
    own = f"{pg_url()}?options=-c%20plan_cache_mode%3Dforce_custom_plan"
    custom, generic = asyncio.run(_plans(own, _schema()))
    assert (custom, generic) == (8, 0)


def test_least_privileges_own_schema_only() -> None:
    role = f"perdure_app_{uuid.uuid4().hex[:8]}"
    schema = f"{role}_s"
    admin = psycopg.connect(pg_url(), autocommit=True)
    try:
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        admin.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
        user_url = pg_url().replace("://postgres@", f"://{role}@", 1)
        assert user_url != pg_url(), "the test URL must name user postgres"
        url = f"{user_url}?schema={schema}"

        async def main() -> None:
            async with perdure.Runtime(
                url, orchestrations=ORCHESTRATIONS, activities=ACTIVITIES
            ) as rt:
                await rt.client.start_orchestration("p", "chain", 0)
                await rt.client.start_orchestration("e", "until_event", "go")
                async with perdure.Client(url) as client:
                    await client.raise_event("e", "go", "x")
                    assert (await client.wait_for_orchestration("p", 20)).output == 3
                    assert (await client.wait_for_orchestration("e", 20)).output == "x"
                    await client.delete_instance("p")

        asyncio.run(main())
        # Nothing outside its schema: it could not have made another one.
        row = admin.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (role,)
        ).fetchone()
        assert row == (False,)
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


class _LostAnswers(PostgresProvider):
    """Each write commits, then its answer is lost once (a dead connection)."""

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema=schema)
        self.lost: set[str] = set()

    def _lose(self, verb: str) -> None:
        if verb not in self.lost:
            self.lost.add(verb)
            raise TransientStorageError("connection lost", maybe_applied=True)

    async def create_instance(self, new: NewInstance) -> None:
        await super().create_instance(new)
        if "create" not in self.lost:
            # As if a runtime's first turn had run: it fills in the version.
            async with self._connection() as conn:
                await conn.execute(
                    f'UPDATE "{self.schema}".instances SET version = %s'
                    " WHERE instance_id = %s",
                    ("1.0.0", new.instance_id),
                )
        self._lose("create")

    async def enqueue_hidden(
        self, instance_id: str, message: Message, key: str, hold: float
    ) -> bool:
        found = await super().enqueue_hidden(instance_id, message, key, hold)
        self._lose("hide")
        return found

    async def reveal(self, instance_id: str, key: str) -> None:
        await super().reveal(instance_id, key)
        self._lose("reveal")


def test_client_writes_stay_exactly_once_when_answers_are_lost() -> None:
    schema = _schema()

    async def main() -> None:
        provider = _LostAnswers(pg_url(), schema)
        await provider.open()
        try:
            client = perdure.Client(provider)
            await client.start_orchestration("once", "until_event", "go")
            await client.raise_event("once", "go", 1)
            assert provider.lost == {"create", "hide", "reveal"}
            async with provider._connection() as conn:
                cursor = await conn.execute(
                    f'SELECT kind, count(*) FROM "{schema}".messages'
                    " WHERE instance_id = 'once' GROUP BY kind ORDER BY kind"
                )
                counts: list[Any] = await cursor.fetchall()
            assert counts == [("event_raised", 1), ("start", 1)]
            # Someone else's instance under the id is still refused.
            with pytest.raises(perdure.InstanceExists):
                await client.start_orchestration("once", "chain", 1)
            with pytest.raises(perdure.InstanceNotFound):
                await client.raise_event("nobody", "go")
            await provider.drop_schema()
        finally:
            await provider.close()

    asyncio.run(main())


def test_client_gives_up_at_its_deadline() -> None:
    async def main() -> None:
        client = perdure.Client(
            "postgresql://postgres@127.0.0.1:1/db?connect_timeout=1",
            retry_timeout=1.0,
        )
        with pytest.raises(perdure.StorageError, match=r"127\.0\.0\.1"):
            await client.get_status("x")
        await client.close()

    asyncio.run(main())
