"""Spans and metrics with the OpenTelemetry SDK (in-memory exporter and reader)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from _otel_helpers import Recorded
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

import perdure
from perdure import _telemetry, events as h
from perdure._otel import Telemetry


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """A `Telemetry` on private SDK providers for the components made here.

    The global providers are left alone, so other test modules never record
    trace fields into their histories.
    """
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    old = _telemetry.install(Telemetry(tracer_provider, meter_provider))
    try:
        yield Recorded(tracer_provider, exporter, reader)
    finally:
        _telemetry.install(old)
        tracer_provider.shutdown()
        meter_provider.shutdown()


STARTED: dict[str, asyncio.Event] = {}


@perdure.activity
async def double(ctx: perdure.ActivityContext, x: int) -> int:
    return 2 * x


@perdure.activity
async def stuck(ctx: perdure.ActivityContext) -> None:
    STARTED.setdefault(ctx.instance_id, asyncio.Event()).set()
    await asyncio.sleep(30)


@perdure.activity
async def flaky(ctx: perdure.ActivityContext) -> int:
    if ctx.attempt < 2:
        raise ConnectionError("try again")
    return ctx.attempt


@perdure.orchestration
async def simple(ctx: perdure.OrchestrationContext, x: int) -> int:
    return await ctx.schedule_activity(double, x)


@perdure.orchestration
async def waits(ctx: perdure.OrchestrationContext) -> int:
    first = await ctx.schedule_activity(double, 1)
    more = await ctx.schedule_wait("go")
    return int(first + await ctx.schedule_activity(double, more))


@perdure.orchestration
async def parent(ctx: perdure.OrchestrationContext) -> int:
    return int(await ctx.schedule_sub_orchestration(simple, 3))


@perdure.orchestration
async def racing(ctx: perdure.OrchestrationContext) -> int:
    index, _ = await ctx.select(ctx.schedule_activity(stuck), ctx.schedule_timer(0.5))
    return int(index)


@perdure.orchestration
async def retried(ctx: perdure.OrchestrationContext) -> int:
    policy = perdure.RetryPolicy(max_attempts=3, initial_interval=0.01)
    return int(await ctx.schedule_activity(flaky, retry=policy))


@perdure.orchestration
async def boom(ctx: perdure.OrchestrationContext) -> None:
    raise ValueError("no")


def of(spans: list[ReadableSpan], instance_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if (s.attributes or {}).get("perdure.instance_id") == instance_id
    ]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


async def test_start_turns_and_activities_share_the_starting_trace(
    otel: Recorded, sqlite_url: str
) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    async with perdure.Runtime(
        sqlite_url, orchestrations=[simple], activities=[double]
    ) as rt:
        with tracer.start_as_current_span("request") as request:
            await rt.client.start_orchestration("i1", simple, 21)
        state = await rt.client.wait_for_orchestration("i1", 10)
    assert state.output == 42
    tid = request.get_span_context().trace_id
    (start,) = otel.spans("perdure.start")
    assert trace_id(start) == tid and start.kind is SpanKind.PRODUCER
    assert start.parent is not None
    assert start.parent.span_id == request.get_span_context().span_id
    assert attrs(start) == {
        "perdure.instance_id": "i1",
        "perdure.orchestration": "simple",
    }
    turns = of(otel.spans("perdure.turn"), "i1")
    assert len(turns) == 2
    assert {trace_id(t) for t in turns} == {tid}
    # Every turn is a child of the start span (stored with the instance).
    assert {t.parent.span_id for t in turns if t.parent} == {start.context.span_id}
    first, last = sorted(turns, key=lambda s: s.start_time or 0)
    assert attrs(first) == {
        "perdure.instance_id": "i1",
        "perdure.orchestration": "simple",
        "perdure.execution_id": 1,
        "perdure.replayed": 0,
        "perdure.cache_hit": False,
    }
    assert attrs(last)["perdure.cache_hit"] is True
    assert attrs(last)["perdure.outcome"] == "completed"
    (activity,) = of(otel.spans("perdure.activity"), "i1")
    assert trace_id(activity) == tid
    assert (
        activity.parent is not None and activity.parent.span_id == first.context.span_id
    )
    assert attrs(activity) == {
        "perdure.instance_id": "i1",
        "perdure.execution_id": 1,
        "perdure.event_id": 2,
        "perdure.activity": "double",
        "perdure.attempt": 1,
        "perdure.scope": "0",
        "perdure.outcome": "completed",
    }
    history = await_history(sqlite_url, "i1")
    started = (await history)[0]
    assert isinstance(started, h.OrchestrationStarted)
    assert started.trace is not None and "traceparent" in started.trace


async def await_history(url: str, instance_id: str) -> list[h.AnyEvent]:
    async with perdure.Client(url) as client:
        return await client.get_history(instance_id)


async def test_a_turn_after_a_restart_joins_the_trace(
    otel: Recorded, sqlite_url: str
) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        async with perdure.Runtime(
            sqlite_url, orchestrations=[waits], activities=[double]
        ) as rt:
            await rt.client.start_orchestration("w", waits)

            async def waiting() -> bool:
                history = await rt.client.get_history("w")
                return any(isinstance(e, h.EventWaitStarted) for e in history)

            while not await waiting():
                await asyncio.sleep(0.01)
    # A new runtime object on the same file: no cache, a fresh worker.
    async with perdure.Runtime(
        sqlite_url, orchestrations=[waits], activities=[double]
    ) as rt:
        await rt.client.raise_event("w", "go", 5)
        state = await rt.client.wait_for_orchestration("w", 10)
    assert state.output == 12
    tid = request.get_span_context().trace_id
    turns = of(otel.spans("perdure.turn"), "w")
    assert {trace_id(t) for t in turns} == {tid}
    replayed = [t for t in turns if attrs(t)["perdure.replayed"] > 0]
    assert replayed and not attrs(replayed[0])["perdure.cache_hit"]
    activities = of(otel.spans("perdure.activity"), "w")
    assert len(activities) == 2 and {trace_id(a) for a in activities} == {tid}
    names = otel.metrics()
    assert sum(v for _, v in names["perdure.replays"]) >= 1  # type: ignore[misc]
    assert sum(v for _, v in names["perdure.replayed_events"]) >= 4  # type: ignore[misc]


async def test_an_activity_run_by_another_runtime_joins_the_trace(
    otel: Recorded, sqlite_url: str
) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    async with (
        perdure.Runtime(sqlite_url, orchestrations=[simple], role="orchestrator") as o,
        perdure.Runtime(sqlite_url, activities=[double], role="worker"),
    ):
        with tracer.start_as_current_span("request") as request:
            await o.client.start_orchestration("x", simple, 1)
        await o.client.wait_for_orchestration("x", 10)
    (activity,) = of(otel.spans("perdure.activity"), "x")
    assert trace_id(activity) == request.get_span_context().trace_id


async def test_a_sub_orchestration_joins_the_trace(
    otel: Recorded, sqlite_url: str
) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    async with perdure.Runtime(
        sqlite_url, orchestrations=[parent, simple], activities=[double]
    ) as rt:
        with tracer.start_as_current_span("request") as request:
            await rt.client.start_orchestration("p", parent)
        state = await rt.client.wait_for_orchestration("p", 10)
    assert state.output == 6
    tid = request.get_span_context().trace_id
    spans = otel.spans()
    children = [
        s
        for s in spans
        if str(attrs(s).get("perdure.instance_id", "")).startswith("p::")
    ]
    assert {s.name for s in children} == {"perdure.turn", "perdure.activity"}
    assert {trace_id(s) for s in children} == {tid}
    parent_turns = {t.context.span_id for t in of(otel.spans("perdure.turn"), "p")}
    first_child_turn = min(
        (s for s in children if s.name == "perdure.turn"),
        key=lambda s: s.start_time or 0,
    )
    assert first_child_turn.parent is not None
    assert first_child_turn.parent.span_id in parent_turns


async def test_a_select_loser_activity_ends_lost_select(
    otel: Recorded, sqlite_url: str
) -> None:
    async with perdure.Runtime(
        sqlite_url,
        orchestrations=[racing],
        activities=[stuck],
        cancellation_grace_period=0.05,
    ) as rt:
        await rt.client.start_orchestration("r", racing)
        state = await rt.client.wait_for_orchestration("r", 10)
        assert state.output == 1

        async def ended() -> bool:
            return bool(of(otel.spans("perdure.activity"), "r"))

        while not await ended():
            await asyncio.sleep(0.01)
    (activity,) = of(otel.spans("perdure.activity"), "r")
    assert attrs(activity)["perdure.outcome"] == "lost_select"
    # Started outside any trace: its first turn's trace is the instance's.
    turns = of(otel.spans("perdure.turn"), "r")
    assert {trace_id(t) for t in turns} == {trace_id(activity)}
    outcomes = {
        a["perdure.outcome"] for a, _ in otel.metrics()["perdure.activity.attempts"]
    }
    assert "lost_select" in outcomes


async def test_retries_failures_and_metrics(otel: Recorded, sqlite_url: str) -> None:
    async with perdure.Runtime(
        sqlite_url, orchestrations=[retried, boom], activities=[flaky]
    ) as rt:
        await rt.client.start_orchestration("f", retried)
        assert (await rt.client.wait_for_orchestration("f", 10)).output == 2
        await rt.client.start_orchestration("bad", boom)
        assert (await rt.client.wait_for_orchestration("bad", 10)).status == "Failed"
    (failed,) = of(otel.spans("perdure.turn"), "bad")
    assert attrs(failed)["perdure.outcome"] == "failed"
    assert failed.status.status_code is StatusCode.ERROR
    first, second = sorted(
        of(otel.spans("perdure.activity"), "f"), key=lambda s: s.start_time or 0
    )
    assert attrs(first)["perdure.outcome"] == "retrying"
    assert attrs(first)["perdure.attempt"] == 1
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    assert attrs(second)["perdure.outcome"] == "completed"
    assert attrs(second)["perdure.attempt"] == 2
    metrics = otel.metrics()
    assert {a["perdure.orchestration"] for a, _ in metrics["perdure.turns"]} >= {
        "retried"
    }
    assert metrics["perdure.turn.duration"]
    assert metrics["perdure.cache.hits"]
    durations = {a["perdure.outcome"] for a, _ in metrics["perdure.activity.duration"]}
    assert durations == {"retrying", "completed"}
    depth = {a["perdure.queue"]: v for a, v in metrics["perdure.queue.depth"]}
    assert depth == {"orchestrations": 0, "activities": 0}
