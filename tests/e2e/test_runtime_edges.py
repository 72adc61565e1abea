"""Runtime edges: options it refuses, restarts, and shutdowns that go wrong.

Storage faults are injected with SQLite provider subclasses, as in
test_supervision.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import WAIT, outcome, runtime

import perdure
from perdure import OrchestrationContext, StorageError, _supervise as supervise_module
from perdure._supervise import RuntimeFailed
from perdure.providers import Channel
from perdure.providers.sqlite import SqliteProvider


@perdure.activity(name="Inc")
async def inc(ctx: perdure.ActivityContext, n: int) -> int:
    return n + 1


@perdure.orchestration(name="Twice")
async def twice(ctx: OrchestrationContext, n: int) -> int:
    n = await ctx.schedule_activity(inc, n)
    return int(await ctx.schedule_activity(inc, n))


@perdure.orchestration(name="Busy")
async def busy(ctx: OrchestrationContext, seconds: float) -> str:
    # Never yields for *seconds*: only a turn_timeout can stop it.
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"role": "scheduler"}, "role must be 'all', 'orchestrator' or 'worker'"),
        ({"orchestration_concurrency": 0}, "orchestration_concurrency must be >= 1"),
        ({"activity_concurrency": 0}, "activity_concurrency must be >= 1"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"turn_timeout": 0}, "turn_timeout must be > 0"),
        ({"turn_timeout": -1.0}, "turn_timeout must be > 0"),
    ],
)
def test_unusable_options_are_refused(
    sqlite_url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        perdure.Runtime(sqlite_url, **options)


async def test_turn_timeout_none_lets_a_long_turn_finish(sqlite_url: str) -> None:
    async with runtime(sqlite_url, [busy], turn_timeout=None) as rt:
        await rt.client.start_orchestration("slow", "Busy", 0.6)
        state = await rt.client.wait_for_orchestration("slow", timeout=WAIT)
    assert outcome(state) == {"status": "Completed", "output": "done", "error": None}


async def test_the_same_turn_is_stopped_under_a_turn_timeout(sqlite_url: str) -> None:
    async with runtime(sqlite_url, [busy], turn_timeout=0.2) as rt:
        await rt.client.start_orchestration("slow", "Busy", 5.0)
        state = await rt.client.wait_for_orchestration("slow", timeout=WAIT)
    assert state.status == "Failed"
    assert state.error is not None and state.error.type == "TurnTimeout"


async def test_start_twice_runs_one_set_of_loops(sqlite_url: str) -> None:
    rt = runtime(sqlite_url, [twice], [inc])
    await rt.start()
    try:
        tasks = list(rt._tasks)
        await rt.start()
        assert rt._tasks == tasks and len(tasks) == 2
        state = await _run(rt, "a", 1)
        assert (state.status, state.output) == ("Completed", 3)
    finally:
        await rt.shutdown()
    assert rt.provider is not None
    await rt.shutdown()  # once stopped, shutting down again does nothing


class FaultyWait(SqliteProvider):
    """`wait` (unguarded by the loops) hangs or fails on demand."""

    hang = False
    fail_on_wake = False
    faults = 0  # waits on "orchestrations" that raise, -1: all of them

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.hanging = asyncio.Event()

    async def wait(self, channel: Channel, timeout: float) -> None:
        if channel == "orchestrations":
            if self.hang:
                self.hanging.set()
                await asyncio.sleep(3600)
            if self.faults:
                self.faults -= 1
                raise StorageError("injected: waiting failed")
        await super().wait(channel, timeout)
        if self.fail_on_wake and channel == "orchestrations":
            raise StorageError("injected: the connection dropped while stopping")


@contextlib.asynccontextmanager
async def faulty(path: Path) -> AsyncIterator[FaultyWait]:
    """A `FaultyWait` closed at the end (a runtime leaves it open)."""
    provider = FaultyWait(str(path))
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise_module, "BACKOFF", 0.01)


async def test_shutdown_cuts_off_a_loop_stuck_in_storage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with faulty(tmp_path / "stuck.db") as provider:
        rt = runtime(provider, [twice], [inc])
        await rt.start()
        provider.hang = True
        await asyncio.wait_for(provider.hanging.wait(), WAIT)
        begun = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="perdure.runtime"):
            await rt.shutdown(timeout=0.1)
        # Cut off after the grace period, which is at least one second.
        assert 0.9 < time.monotonic() - begun < 10
        assert [r.getMessage() for r in caplog.records] == [
            "shutdown: a runtime loop did not stop in time"
        ]
        assert rt._tasks == [] and rt.failed is None


async def test_a_loop_failing_while_stopping_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with faulty(tmp_path / "drop.db") as provider:
        rt = runtime(provider, [twice], [inc])
        await rt.start()
        assert (await _run(rt, "a", 1)).output == 3
        provider.fail_on_wake = True  # no await before shutdown: no fault yet
        with caplog.at_level(logging.ERROR, logger="perdure.runtime"):
            await rt.shutdown()
        failed = [
            r
            for r in caplog.records
            if r.getMessage() == "shutdown: a runtime loop failed while stopping"
        ]
        assert len(failed) == 1 and failed[0].exc_info is not None
        assert isinstance(failed[0].exc_info[1], StorageError)
        assert rt.failed is None
        assert not any("restarting" in r.getMessage() for r in caplog.records)


async def test_only_recent_deaths_count_towards_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same faults that fail a runtime within the window (see
    # test_supervision) are survived when each death is outside it.
    monkeypatch.setattr(supervise_module, "MAX_RESTARTS", 2)
    monkeypatch.setattr(supervise_module, "WINDOW", 0.0)
    async with faulty(tmp_path / "window.db") as provider:
        provider.faults = 6
        async with runtime(provider, [twice], [inc]) as rt:
            state = await _run(rt, "a", 1)
            for _ in range(int(WAIT / 0.01)):
                if not provider.faults:
                    break
                await asyncio.sleep(0.01)
            assert provider.faults == 0
            assert (state.status, state.output) == ("Completed", 3)
            assert rt.failed is None


async def test_a_failed_runtime_stays_failed_when_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervise_module, "MAX_RESTARTS", 1)
    async with faulty(tmp_path / "failed.db") as provider:
        provider.faults = -1
        rt = runtime(provider, [twice], [inc])
        await rt.start()
        with pytest.raises(RuntimeFailed) as first:
            await asyncio.wait_for(rt.wait(), WAIT)
        with pytest.raises(RuntimeFailed):
            await rt.shutdown()
        provider.faults = 0
        await rt.start()
        try:
            # Raised at once, not after another round of deaths.
            with pytest.raises(RuntimeFailed) as again:
                await asyncio.wait_for(rt.wait(), 1.0)
            assert again.value is first.value
        finally:
            with pytest.raises(RuntimeFailed):
                await rt.shutdown()


async def _run(rt: perdure.Runtime, iid: str, n: int) -> perdure.OrchestrationState:
    await rt.client.start_orchestration(iid, "Twice", n)
    return await rt.client.wait_for_orchestration(iid, timeout=WAIT)
