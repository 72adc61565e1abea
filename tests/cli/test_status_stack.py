"""``perdure status`` shows where a failed instance failed (its stack)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

import perdure
from perdure import ActivityContext, OrchestrationContext
from perdure.cli import main


def ship_to(address: dict[str, str]) -> str:
    return address["zip"]  # KeyError: 'zip'


@perdure.activity
async def ship(ctx: ActivityContext, address: dict[str, str]) -> str:
    return ship_to(address)


@perdure.orchestration
async def waits(ctx: OrchestrationContext) -> None:
    await ctx.schedule_wait("go")


@perdure.orchestration
async def order(ctx: OrchestrationContext, address: dict[str, str]) -> str:
    return await ctx.schedule_activity(ship, address)


def run_to_end(
    url: str, iid: str, name: str | Callable[..., Any], value: Any = None
) -> None:
    async def go() -> None:
        async with perdure.Runtime(
            url, orchestrations=[order, waits], activities=[ship], poll_interval=0.02
        ) as rt:
            await rt.client.start_orchestration(iid, name, value)
            if name is waits:
                await rt.client.cancel_instance(iid, "operator said stop")
            await rt.client.wait_for_orchestration(iid, timeout=30)

    asyncio.run(go())


def test_status_shows_the_stack_of_the_failed_activity(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_to_end(storage_url, "o1", order, {"street": "Main St"})
    assert main(["--db", storage_url, "status", "o1"]) == 0
    out = capsys.readouterr().out
    assert "error      KeyError: 'zip' [application]" in out
    head, stack = out.split("\nstack\n")
    assert "status     Failed" in head
    lines = stack.splitlines()
    assert lines[0] == "  Traceback (most recent call last):"
    assert any("in ship_to" in line for line in lines)
    assert "    return address[\"zip\"]  # KeyError: 'zip'" in stack
    assert lines[-1] == "  KeyError: 'zip'"

    assert main(["--db", storage_url, "status", "o1", "--json"]) == 0
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "KeyError"
    assert error["stack"] == "\n".join(line[2:] for line in lines) + "\n"


def test_status_without_a_stack_prints_none(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_to_end(storage_url, "c1", waits)  # cancelled: an error, no traceback
    assert main(["--db", storage_url, "status", "c1"]) == 0
    out = capsys.readouterr().out
    assert "status     Cancelled" in out
    assert "error      Cancelled: operator said stop [application]" in out
    assert "\nstack" not in out
