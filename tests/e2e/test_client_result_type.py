"""`Client.wait_for_orchestration(..., result_type=T)` decodes the output as T."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pydantic
import pytest
from _helpers import WAIT, runtime

import perdure


@dataclasses.dataclass(frozen=True)
class Receipt:
    order_id: str
    total: float
    paid_at: datetime


class Shipment(pydantic.BaseModel):
    carrier: str
    parcels: int


class Colour(enum.Enum):
    RED = "red"


@perdure.orchestration
async def echo(ctx: perdure.OrchestrationContext, value: object) -> object:
    return value


@perdure.orchestration
async def receipt(ctx: perdure.OrchestrationContext) -> Receipt:
    return Receipt("o-1", 12.5, datetime(2024, 5, 1, 12, 30))


@perdure.orchestration
async def fails(ctx: perdure.OrchestrationContext) -> None:
    raise ValueError("no")


ORCHS: list[Callable[..., Any]] = [echo, receipt, fails]


async def test_dataclass_output(sqlite_url: str) -> None:
    async with runtime(sqlite_url, ORCHS) as rt:
        await rt.client.start_orchestration("r", receipt)
        state = await rt.client.wait_for_orchestration("r", WAIT, result_type=Receipt)
        assert state.output == Receipt("o-1", 12.5, datetime(2024, 5, 1, 12, 30))
        # Without result_type the output stays JSON, as before.
        plain = await rt.client.wait_for_orchestration("r", WAIT)
        assert plain.output == {
            "order_id": "o-1",
            "total": 12.5,
            "paid_at": "2024-05-01T12:30:00",
        }
        assert dataclasses.replace(state, output=plain.output) == plain


async def test_pydantic_and_other_hints(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        await client.start_orchestration("s", echo, {"carrier": "ups", "parcels": 2})
        shipment = await client.wait_for_orchestration("s", WAIT, result_type=Shipment)
        assert shipment.output == Shipment(carrier="ups", parcels=2)
        many = await client.wait_for_orchestration(
            "s", WAIT, result_type=dict[str, str | int]
        )
        assert many.output == {"carrier": "ups", "parcels": 2}
        await client.start_orchestration("l", echo, [{"carrier": "dhl", "parcels": 1}])
        listed = await client.wait_for_orchestration(
            "l", WAIT, result_type=list[Shipment]
        )
        assert listed.output == [Shipment(carrier="dhl", parcels=1)]
        await client.start_orchestration("c", echo, "red")
        colour = await client.wait_for_orchestration("c", WAIT, result_type=Colour)
        assert colour.output is Colour.RED
        await client.start_orchestration("n", echo, 3)
        number = await client.wait_for_orchestration("n", WAIT, result_type=float)
        assert number.output == 3


async def test_output_that_does_not_decode(sqlite_url: str) -> None:
    async with runtime(sqlite_url, ORCHS) as rt:
        client = rt.client
        await client.start_orchestration("str", echo, "not a receipt")
        with pytest.raises(perdure.PayloadError, match=r"'str'.*not Receipt"):
            await client.wait_for_orchestration("str", WAIT, result_type=Receipt)
        await client.start_orchestration("partial", echo, {"carrier": "ups"})
        with pytest.raises(perdure.PayloadError, match="'partial'"):
            await client.wait_for_orchestration("partial", WAIT, result_type=Shipment)
        with pytest.raises(perdure.PayloadError, match="'partial'"):
            await client.wait_for_orchestration("partial", WAIT, result_type=Receipt)
        with pytest.raises(perdure.PayloadError, match="not list"):
            await client.wait_for_orchestration(
                "partial", WAIT, result_type=list[Shipment]
            )


async def test_unfinished_or_failed_state_is_not_decoded(sqlite_url: str) -> None:
    async with runtime(sqlite_url, ORCHS) as rt:
        client = rt.client
        await client.start_orchestration("f", fails)
        state = await client.wait_for_orchestration("f", WAIT, result_type=Receipt)
        output: object = state.output
        assert state.status == "Failed" and output is None
        assert state.error is not None and state.error.type == "ValueError"


async def test_none_output_needs_an_optional_type(sqlite_url: str) -> None:
    async with runtime(sqlite_url, ORCHS) as rt:
        client = rt.client
        await client.start_orchestration("none", echo, None)
        with pytest.raises(perdure.PayloadError, match="None is a NoneType"):
            await client.wait_for_orchestration("none", WAIT, result_type=Receipt)
        maybe = await client.wait_for_orchestration(
            "none", WAIT, result_type=Receipt | None
        )
        assert maybe.status == "Completed" and maybe.output is None
