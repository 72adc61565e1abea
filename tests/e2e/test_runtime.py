"""Runtime roles, registration, graceful shutdown and activity poison."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _helpers import WAIT, eventually, of_type, run_to_end, runtime

import perdure
from perdure import events as h

#: Attempts seen by the activities below, per instance id.
SEEN: dict[str, list[int]] = {}


@perdure.activity
async def work(ctx: perdure.ActivityContext, n: int) -> int:
    SEEN.setdefault(ctx.instance_id, []).append(ctx.attempt)
    await asyncio.sleep(0.1)
    return n + 1


@perdure.activity
async def hang(ctx: perdure.ActivityContext) -> None:
    SEEN.setdefault(ctx.instance_id, []).append(ctx.attempt)
    await asyncio.sleep(60)


@perdure.orchestration
async def pipeline(ctx: perdure.OrchestrationContext, n: int) -> int:
    n = await ctx.schedule_activity(work, n)
    await ctx.schedule_timer(0.01)
    return await ctx.schedule_activity(work, n)


@perdure.orchestration
async def stuck(ctx: perdure.OrchestrationContext) -> None:
    await ctx.schedule_activity(hang)


def test_duplicate_registration_is_rejected(tmp_path: object) -> None:
    @perdure.activity(name="work")
    def work_again(ctx: perdure.ActivityContext) -> None: ...

    @perdure.orchestration(name="pipeline")
    async def pipeline_again(ctx: perdure.OrchestrationContext) -> None: ...

    @perdure.orchestration(name="pipeline", version="2.0.0")
    async def pipeline_v2(ctx: perdure.OrchestrationContext) -> None: ...

    url = "sqlite://:memory:"
    with pytest.raises(ValueError, match="'work'"):
        perdure.Runtime(url, activities=[work, work_again])
    with pytest.raises(ValueError, match="'pipeline'"):
        perdure.Runtime(url, orchestrations=[pipeline, pipeline_again])
    # Same name, another version: allowed.
    perdure.Runtime(url, orchestrations=[pipeline, pipeline_v2])


async def test_orchestrator_and_worker_roles_share_one_file(sqlite_url: str) -> None:
    SEEN.pop("split", None)
    orch = runtime(sqlite_url, [pipeline], role="orchestrator")
    # The worker gets no orchestrations at all: it only runs activities.
    worker = runtime(sqlite_url, activities=[work], role="worker")
    async with orch, worker:
        state = await run_to_end(orch.client, "split", pipeline, 1)
        assert state.status == "Completed", state.error
        assert state.output == 3
        assert await worker.client.get_status("split") == state
    assert SEEN["split"] == [1, 1]


async def test_orchestrator_alone_leaves_activities_queued(storage_url: str) -> None:
    SEEN.pop("queued", None)
    async with runtime(storage_url, [pipeline], role="orchestrator") as orch:
        await orch.client.start_orchestration("queued", pipeline, 5)
        await eventually(
            lambda: _scheduled(orch.client, "queued"), "the activity to be scheduled"
        )
        with pytest.raises(TimeoutError):
            await orch.client.wait_for_orchestration("queued", 0.2)
    assert "queued" not in SEEN
    async with runtime(storage_url, [pipeline], [work]) as rt:
        state = await rt.client.wait_for_orchestration("queued", WAIT)
    assert state.output == 7


async def _scheduled(client: perdure.Client, iid: str) -> bool:
    return bool(of_type(await client.get_history(iid), h.ActivityScheduled))


async def test_graceful_shutdown_lets_running_activity_finish(storage_url: str) -> None:
    SEEN.pop("grace", None)
    rt = runtime(storage_url, [pipeline], [work])
    await rt.start()
    await rt.client.start_orchestration("grace", pipeline, 10)
    await eventually(lambda: SEEN.get("grace"), "the activity to start")
    await rt.shutdown(timeout=WAIT)  # waits for the running activity, acks it
    await rt.shutdown()  # idempotent
    async with runtime(storage_url, [pipeline], [work]) as again:
        state = await again.client.wait_for_orchestration("grace", WAIT)
        history = await again.client.get_history("grace")
    assert state.output == 12
    # The first activity ran exactly once: its result survived the shutdown.
    assert SEEN["grace"] == [1, 1]
    assert len(of_type(history, h.ActivityCompleted)) == 2


async def test_shutdown_timeout_abandons_activity_for_retry(storage_url: str) -> None:
    SEEN.pop("cut", None)
    rt = runtime(storage_url, [pipeline], [work], lock_timeout=0.3)
    await rt.start()
    await rt.client.start_orchestration("cut", pipeline, 0)
    await eventually(lambda: SEEN.get("cut"), "the activity to start")
    await rt.shutdown(timeout=0.01)  # too short: the activity is interrupted
    async with runtime(storage_url, [pipeline], [work], lock_timeout=0.3) as again:
        state = await again.client.wait_for_orchestration("cut", WAIT)
    assert state.output == 2
    # Re-delivered after the lease expired: attempt 2, then the second activity.
    assert SEEN["cut"] == [1, 2, 1]


async def test_activity_that_never_acks_becomes_poison(storage_url: str) -> None:
    SEEN.pop("poison", None)
    options: dict[str, Any] = {"lock_timeout": 0.3, "max_attempts": 2}
    async with runtime(storage_url, [stuck], role="orchestrator", **options) as orch:
        await orch.client.start_orchestration("poison", stuck)
        for attempt in (1, 2):
            # Each worker "crashes" (stops without acknowledging) mid-activity.
            worker = runtime(storage_url, activities=[hang], role="worker", **options)
            await worker.start()

            def ran(n: int = attempt) -> bool:
                return len(SEEN.get("poison", [])) == n

            await eventually(ran, "run")
            await worker.shutdown(timeout=0.01)
        async with runtime(storage_url, activities=[hang], role="worker", **options):
            state = await orch.client.wait_for_orchestration("poison", WAIT)
        history = await orch.client.get_history("poison")
    assert SEEN["poison"] == [1, 2]  # the third delivery was not run
    assert state.status == "Failed" and state.error is not None
    assert state.error.category == "poison"
    assert "hang" in state.error.message
    (failed,) = of_type(history, h.ActivityFailed)
    assert failed.error["category"] == "poison"
    assert failed.error["type"] == "PoisonMessage"
