"""examples/postgres_split_roles.py: role-only runtimes, in one process and apart."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import pytest

import perdure

pytest.importorskip("psycopg")
from perdure.providers.postgres import PostgresProvider

pytestmark = pytest.mark.postgres

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "postgres_split_roles.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_pg_split", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def fresh_url() -> AsyncIterator[str]:
    base = os.environ.get("PERDURE_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PERDURE_TEST_POSTGRES_URL is not set")
        pytest.skip("PERDURE_TEST_POSTGRES_URL is not set")
    schema = f"perdure_split_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    finally:
        provider = PostgresProvider(base, schema=schema)
        await provider.open()
        try:
            await provider.drop_schema()
        finally:
            await provider.close()


def expected(example: ModuleType) -> dict[str, str]:
    return {
        order: f"receipt sent (charged {sum(prices):.2f} for {order})"
        for order, prices in example.ORDERS.items()
    }


async def test_split_runtimes_in_one_process() -> None:
    example = _example()
    async with fresh_url() as url:
        assert await example.run(url) == expected(example)


async def test_split_runtimes_in_separate_processes() -> None:
    example = _example()
    async with fresh_url() as url:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                role,
                url,
                stdout=asyncio.subprocess.PIPE,
            )
            for role in ("orchestrator", "worker")
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert b"running" in line
            async with perdure.Client(url) as client:
                for order, prices in example.ORDERS.items():
                    await client.start_orchestration(order, "Checkout", prices)
                outputs = {}
                for order in example.ORDERS:
                    state = await client.wait_for_orchestration(order, 30)
                    outputs[order] = state.output
            assert outputs == expected(example)
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(
                asyncio.gather(*(p.wait() for p in procs)), 30
            ) == [0, 0]
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
