"""Failover: a primary and a synchronous standby, the primary killed mid-load.

Both servers are built by the test with the PostgreSQL binaries on the
machine (``initdb``, ``pg_basebackup -R``); the runtime and a separate
client use one libpq multi-host URL with ``target_session_attrs=read-write``.
The primary is killed (``pg_ctl stop -m immediate``) while instances run and
while the client is still starting them, then the standby is promoted:
every instance must complete with the right result, and the client must
ride through (retrying until its deadline) instead of raising.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from _app import ACTIVITIES, ORCHESTRATIONS
from _servers import Cluster, cluster, server_root

import perdure

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["server_root"]  # a fixture

N = 300


def _wait_sync(primary_url: str) -> None:
    import psycopg

    deadline = time.monotonic() + 60
    with psycopg.connect(primary_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchone()
            if row is not None and row[0] == "sync":
                return
            time.sleep(0.1)
    raise AssertionError("the standby never became synchronous")


def test_runtime_and_client_ride_through_failover(
    server_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with cluster(
        server_root,
        "primary",
        wal_level="replica",
        max_wal_senders="5",
        synchronous_standby_names="'*'",
    ) as primary:
        standby = Cluster(server_root, "standby")
        try:
            standby.standby_of(primary)
            standby.start()
            _wait_sync(primary.url())
            _run(primary, standby, caplog)
        finally:
            standby.stop()


def _run(primary: Cluster, standby: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
        "/postgres?target_session_attrs=read-write&connect_timeout=3"
    )
    caplog.set_level(logging.WARNING, logger="perdure.providers.postgres")
    asyncio.run(_scenario(url, primary, standby))
    outages = [
        r.getMessage()
        for r in caplog.records
        if r.name == "perdure.providers.postgres" and "unreachable" in r.message
    ]
    # One line per outage and provider object (runtime, client), not
    # one per failed call.
    assert 1 <= len(outages) <= 4, outages


async def _scenario(url: str, primary: Cluster, standby: Cluster) -> None:
    started = 0

    async with (
        perdure.Runtime(
            url,
            orchestrations=ORCHESTRATIONS,
            activities=ACTIVITIES,
            lock_timeout=3.0,
            poll_interval=0.2,
        ),
        perdure.Client(url, retry_timeout=120.0) as client,
    ):

        async def starter(offset: int) -> None:
            nonlocal started
            for i in range(offset, N, 10):
                await client.start_orchestration(f"f{i}", "chain", i)
                started += 1

        starters = asyncio.gather(*(starter(k) for k in range(10)))
        async with asyncio.timeout(60):
            while started < N // 3:
                await asyncio.sleep(0.01)
        # Mid-load: a third started, some running, the rest still to start.
        await asyncio.to_thread(primary.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(standby.promote)
        async with asyncio.timeout(150):
            await starters
        deadline = time.monotonic() + 120
        for i in range(N):
            left = max(deadline - time.monotonic(), 0.1)
            state = await client.wait_for_orchestration(f"f{i}", left)
            assert state.status == "Completed", state
            assert state.output == i + 3, state
        listed = await client.list_instances(limit=N + 10)
        assert len(listed) == N
