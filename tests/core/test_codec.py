"""Payload encoding: what is refused at the call, and richer types round-trip."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import pytest

from perdure import PayloadError
from perdure._codec import from_json, to_json


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("caf\udce9", "result: string has a lone surrogate '\\udce9' at index 3"),
        ({"k\ud83d": 1}, "result: string has a lone surrogate"),
        (["ok", {"deep": "\ud800"}], "result[1].deep: string has a lone surrogate"),
        (float("inf"), "result: inf is not a JSON value"),
        (float("-inf"), "result: -inf is not a JSON value"),
        (float("nan"), "result: NaN is not a JSON value"),
    ],
)
def test_values_storage_cannot_write_are_refused_with_their_path(
    value: Any, message: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        to_json(value, "result")
    assert message in str(caught.value)


def test_deep_nesting_is_a_payload_error_not_a_recursion_error() -> None:
    value: list[Any] = []
    for _ in range(10_000):
        value = [value]
    with pytest.raises(PayloadError, match="nested too deeply"):
        to_json(value, "input")


def test_non_ascii_text_is_fine() -> None:
    assert to_json({"naïve": "日本語 🎉"}) == {"naïve": "日本語 🎉"}


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class Order:
    when: datetime.datetime
    day: datetime.date
    at: datetime.time
    id: uuid.UUID
    amount: decimal.Decimal
    colour: Colour
    due: datetime.datetime | None = None


def test_dataclasses_with_datetime_uuid_and_decimal_fields_round_trip() -> None:
    order = Order(
        when=datetime.datetime(2026, 12, 6, 9, 30, tzinfo=datetime.UTC),
        day=datetime.date(2026, 12, 24),
        at=datetime.time(17, 45),
        id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        amount=decimal.Decimal("10.10"),
        colour=Colour.RED,
        due=datetime.datetime(2027, 1, 1),
    )
    encoded = to_json(order)
    assert encoded["when"] == "2026-12-06T09:30:00+00:00"
    assert encoded["amount"] == "10.10"
    assert from_json(encoded, Order) == order
    assert from_json([encoded], list[Order]) == [order]
