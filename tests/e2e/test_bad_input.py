"""Bad input gets a clear error and leaves stored state untouched."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from _helpers import (
    WAIT,
    check_replay,
    of_type,
    outcome,
    reached,
    run_to_end,
    runtime,
    snapshot,
)

import perdure
from perdure import events as h
from perdure._codec import MAX_PAYLOAD_BYTES

TOO_BIG = "x" * (MAX_PAYLOAD_BYTES + 1)


@perdure.activity
def echo(ctx: perdure.ActivityContext, value: object) -> object:
    return value


@perdure.activity
def huge(ctx: perdure.ActivityContext) -> str:
    return TOO_BIG


@perdure.activity
def opaque(ctx: perdure.ActivityContext) -> object:
    return object()


@perdure.orchestration
async def careful(ctx: perdure.OrchestrationContext) -> list[str]:
    errors = []
    for bad in (object(), {1: "int key"}, float("nan"), TOO_BIG):
        try:
            ctx.schedule_activity(echo, bad)
        except perdure.PayloadError as exc:
            errors.append(str(exc))
    for name in ("huge", "opaque"):
        try:
            await ctx.schedule_activity(name)
        except perdure.ActivityFailed as exc:
            errors.append(f"{exc.type}: {exc.message}")
    still = await ctx.schedule_activity(echo, "still works")
    assert isinstance(still, str)
    errors.append(still)
    return errors


@perdure.orchestration
async def bad_output(ctx: perdure.OrchestrationContext) -> object:
    return {"value": object()}


@perdure.orchestration
async def waiter(ctx: perdure.OrchestrationContext) -> object:
    return await ctx.schedule_wait("go")


ORCHS: list[Callable[..., Any]] = [careful, bad_output, waiter]
ACTS: list[Callable[..., Any]] = [echo, huge, opaque]


async def test_unserialisable_values_inside_an_orchestration(storage_url: str) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        return outcome(await run_to_end(client, iid, careful))

    summary, history = await check_replay(storage_url, ORCHS, ACTS, scenario, "careful")
    assert summary["status"] == "Completed", summary
    obj, key, nan, big, huge_result, opaque_result, works = summary["output"]
    assert "object is not serialisable" in obj and "echo" in obj
    assert "JSON object keys must be str" in key
    assert "NaN" in nan
    assert "limit" in big and str(MAX_PAYLOAD_BYTES) in big
    assert huge_result.startswith("PayloadError") and "limit" in huge_result
    assert opaque_result.startswith("PayloadError") and "opaque" in opaque_result
    assert works == "still works"
    # The rejected calls scheduled nothing.
    assert [e.name for e in of_type(history, h.ActivityScheduled)] == [
        "huge",
        "opaque",
        "echo",
    ]


async def test_unserialisable_output_fails_instance(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        state = await run_to_end(rt.client, "out", bad_output)
    assert state.status == "Failed" and state.error is not None
    assert state.error.type == "PayloadError"
    assert "not serialisable" in state.error.message


async def test_client_rejects_bad_input_without_storing_anything(
    storage_url: str,
) -> None:
    async with runtime(storage_url, ORCHS, ACTS) as rt:
        client = rt.client
        await client.start_orchestration("w", waiter)
        await reached(client, "w", h.EventWaitStarted)
        before = await snapshot(client)
        with pytest.raises(perdure.PayloadError, match="not serialisable"):
            await client.start_orchestration("new", waiter, {"when": object()})
        with pytest.raises(perdure.PayloadError, match="limit"):
            await client.start_orchestration("new", waiter, TOO_BIG)
        with pytest.raises(perdure.PayloadError, match="not serialisable"):
            await client.raise_event("w", "go", {1, 2})
        with pytest.raises(perdure.PayloadError, match="limit"):
            await client.raise_event("w", "go", TOO_BIG)
        with pytest.raises(perdure.InstanceExists, match="'w'"):
            await client.start_orchestration("w", waiter, "again")
        with pytest.raises(ValueError, match="instance_id"):
            await client.start_orchestration("", waiter)
        for call in (
            client.raise_event("ghost", "go"),
            client.cancel_instance("ghost"),
            client.get_history("ghost"),
            client.delete_instance("ghost"),
            client.wait_for_orchestration("ghost", 1.0),
        ):
            with pytest.raises(perdure.InstanceNotFound, match="ghost"):
                await call
        assert await client.get_status("ghost") is None
        assert await snapshot(client) == before
        # The instance still works normally afterwards.
        await client.raise_event("w", "go", "fine")
        state = await client.wait_for_orchestration("w", WAIT)
        assert state.output == "fine"


def _corrupt(url: str, iid: str, event_id: int, data: str) -> str:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        with conn:
            (old,) = conn.execute(
                "SELECT data FROM history WHERE instance_id = ? AND event_id = ?",
                (iid, event_id),
            ).fetchone()
            conn.execute(
                "UPDATE history SET data = ? WHERE instance_id = ? AND event_id = ?",
                (data, iid, event_id),
            )
        return str(old)
    finally:
        conn.close()


def _rows(url: str, iid: str) -> list[tuple[int, str]]:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        sql = (
            "SELECT event_id, data FROM history WHERE instance_id = ? ORDER BY event_id"
        )
        return list(conn.execute(sql, (iid,)).fetchall())
    finally:
        conn.close()


async def test_corrupted_history_row(sqlite_url: str) -> None:
    async with runtime(sqlite_url, ORCHS, ACTS) as rt:
        await rt.client.start_orchestration("bad", waiter)
        await reached(rt.client, "bad", h.EventWaitStarted)
    _corrupt(sqlite_url, "bad", 2, "{not json")
    async with runtime(sqlite_url, ORCHS, ACTS, max_attempts=2) as rt:
        with pytest.raises(perdure.StorageError, match="corrupted history event"):
            await rt.client.get_history("bad")
        # A turn needs the history: it cannot replay, so it retries and the
        # message finally becomes poison; the corrupt row is left as it was.
        await rt.client.raise_event("bad", "go", 1)
        state = await rt.client.wait_for_orchestration("bad", WAIT)
        assert state.status == "Failed" and state.error is not None
        assert state.error.category == "poison", state.error
        with pytest.raises(perdure.StorageError):
            await rt.client.get_history("bad")
    rows = _rows(sqlite_url, "bad")
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[1][1] == "{not json"
    assert '"OrchestrationFailed"' in rows[2][1]
