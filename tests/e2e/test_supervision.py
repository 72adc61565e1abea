"""Probe F4: a dispatcher or worker loop that dies is restarted, or the
runtime fails loudly; it never leaves a live-looking process that does nothing.

Faults are injected with a SQLite provider subclass.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from _helpers import WAIT, runtime

import perdure
from perdure import OrchestrationContext, StorageError, _supervise as supervise_module
from perdure._supervise import RuntimeFailed
from perdure.providers import Channel
from perdure.providers.sqlite import SqliteProvider


@perdure.activity(name="Add")
async def add(ctx: perdure.ActivityContext, n: int) -> int:
    return n + 1


@perdure.orchestration(name="Steps")
async def steps(ctx: OrchestrationContext) -> int:
    n = await ctx.schedule_activity(add, 0)
    go = await ctx.schedule_wait("go")
    return int(await ctx.schedule_activity(add, n + int(go)))


class Flaky(SqliteProvider):
    """The finding's provider: storage fails in read_history and abandon."""

    outage = False
    wait_faults: dict[str, int]

    async def read_history(
        self, instance_id: str, execution_id: int | None = None
    ) -> Any:
        if self.outage:
            raise StorageError("injected: database unavailable")
        return await super().read_history(instance_id, execution_id)

    async def abandon_orchestration(
        self, instance_id: str, lock_token: str, delay: float = 0.0
    ) -> Any:
        if self.outage:
            self.outage = False  # the outage ends right after this call
            raise StorageError("injected: database unavailable")
        return await super().abandon_orchestration(instance_id, lock_token, delay)

    async def wait(self, channel: Channel, timeout: float) -> None:
        # `wait` is not guarded by the loops: a fault here kills them.
        faults = getattr(self, "wait_faults", {})
        if faults.get(channel, 0) != 0:
            faults[channel] -= 1
            raise StorageError(f"injected: waiting on {channel} failed")
        await super().wait(channel, timeout)


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise_module, "BACKOFF", 0.01)


async def test_failed_read_and_abandon_do_not_stop_turns(tmp_path: Path) -> None:
    provider = Flaky(str(tmp_path / "f4.db"))
    async with runtime(provider, [steps], [add], instance_cache_size=0) as rt:
        client = rt.client
        await client.start_orchestration("a", "Steps")
        await _running_after_first_activity(client, "a")
        provider.outage = True
        await client.raise_event("a", "go", 10)
        await client.start_orchestration("b", "Steps")
        await _running_after_first_activity(client, "b")
        await client.raise_event("b", "go", 20)
        a = await client.wait_for_orchestration("a", timeout=WAIT)
        b = await client.wait_for_orchestration("b", timeout=WAIT)
        assert not provider.outage
        assert (a.status, a.output, b.status, b.output) == (
            "Completed",
            12,
            "Completed",
            22,
        )
        assert rt.failed is None


async def test_dead_loops_are_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = Flaky(str(tmp_path / "f4.db"))
    provider.wait_faults = {"orchestrations": 3, "activities": 3}
    with caplog.at_level(logging.ERROR, logger="perdure.runtime"):
        async with runtime(provider, [steps], [add]) as rt:
            client = rt.client
            await client.start_orchestration("a", "Steps")
            await _running_after_first_activity(client, "a")
            await client.raise_event("a", "go", 1)
            state = await client.wait_for_orchestration("a", timeout=WAIT)
            assert (state.status, state.output) == ("Completed", 3)
            # Each loop dies on its next waits, whenever they come: a step
            # whose turn commits with its activity's result (fused) wakes
            # no dispatcher, so the idle loops may take their last ones
            # after the instance completed.
            for _ in range(int(WAIT / 0.02)):
                if provider.wait_faults == {"orchestrations": 0, "activities": 0}:
                    break
                await asyncio.sleep(0.02)
            assert provider.wait_faults == {"orchestrations": 0, "activities": 0}
            assert rt.failed is None
    died = [r for r in caplog.records if "loop died; restarting" in r.getMessage()]
    assert {r.getMessage().split(" loop")[0] for r in died} == {
        "the dispatcher",
        "the activity worker",
    }
    assert all(r.exc_info is not None for r in died)


async def test_a_loop_that_keeps_dying_fails_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervise_module, "MAX_RESTARTS", 2)
    provider = Flaky(str(tmp_path / "f4.db"))
    provider.wait_faults = {"orchestrations": -1}  # for ever
    rt = runtime(provider, [steps], [add])
    await rt.start()
    with pytest.raises(RuntimeFailed, match="dispatcher loop kept dying") as waited:
        await asyncio.wait_for(rt.wait(), WAIT)
    assert rt.failed is waited.value
    assert isinstance(waited.value.__cause__, StorageError)
    with pytest.raises(RuntimeFailed):
        await rt.shutdown()


async def _running_after_first_activity(client: perdure.Client, iid: str) -> None:
    for _ in range(int(WAIT / 0.02)):
        history = await client.get_history(iid)
        if any(e.type == "EventWaitStarted" for e in history):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{iid} never reached its wait")
