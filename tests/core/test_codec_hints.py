"""Payload decoding driven by type hints: containers, unions, models, misfits.

`from_json` rebuilds richer values from the hints of orchestration and
activity signatures; these are the hint shapes besides plain dataclasses
(see test_codec.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Any, Literal, TypeVar

import pytest

from perdure import PayloadError
from perdure._codec import from_json, to_json


class Size(enum.Enum):
    S = "s"
    L = "l"


@dataclasses.dataclass(frozen=True)
class Item:
    sku: str
    size: Size


ID = "12345678-1234-5678-1234-567812345678"


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (["s", 3], tuple[Size, int], (Size.S, 3)),
        (["s", "l", "s"], tuple[Size, ...], (Size.S, Size.L, Size.S)),
        (["s", "l", "s"], set[Size], {Size.S, Size.L}),
        (["l"], frozenset[Size], frozenset({Size.L})),
        (
            {"a": {"sku": "a", "size": "l"}},
            dict[str, Item],
            {"a": Item("a", Size.L)},
        ),
        ([[ID]], list[list[uuid.UUID]], [[uuid.UUID(ID)]]),
    ],
)
def test_containers_are_rebuilt_element_by_element(
    value: Any, hint: Any, expected: Any
) -> None:
    decoded = from_json(value, hint)
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_a_union_takes_the_first_member_that_fits() -> None:
    assert from_json(ID, datetime.date | uuid.UUID) == uuid.UUID(ID)
    assert from_json("2026-12-24", datetime.date | uuid.UUID) == datetime.date(
        2026, 12, 24
    )
    assert from_json({"sku": "x", "size": "s"}, Item | None) == Item("x", Size.S)
    assert from_json(None, Item | None) is None


def test_a_value_no_union_member_accepts_is_left_as_stored() -> None:
    assert from_json("neither", datetime.date | uuid.UUID) == "neither"


@pytest.mark.parametrize("hint", [Literal["a", "b"], TypeVar("T"), "Item", Any])
def test_hints_that_are_not_classes_leave_the_value_alone(hint: Any) -> None:
    value = {"sku": "x", "size": "s"}
    assert from_json(value, hint) is value


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        ("xl", Size, "cannot decode 'xl' as <enum 'Size'>: 'xl' is not a valid Size"),
        ({"sku": "x"}, Item, "cannot decode {'sku': 'x'} as <class"),
        ("not a date", datetime.date, "Invalid isoformat string"),
        (["s", "m"], list[Size], "'m' is not a valid Size"),
    ],
)
def test_a_value_that_does_not_fit_its_hint_is_a_payload_error(
    value: Any, hint: Any, message: str
) -> None:
    with pytest.raises(PayloadError, match=message.replace("(", r"\(")) as caught:
        from_json(value, hint)
    assert caught.value.__cause__ is not None


class Model:
    """Quacks like a pydantic v2 model: model_dump(mode=...) and model_validate."""

    def __init__(self, when: datetime.datetime, tags: list[str]) -> None:
        self.when = when
        self.tags = tags

    def model_dump(self, *, mode: str) -> dict[str, Any]:
        assert mode == "json"
        return {"when": self.when.isoformat(), "tags": list(self.tags)}

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> Model:
        return cls(datetime.datetime.fromisoformat(data["when"]), data["tags"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]


def test_pydantic_style_models_round_trip_through_their_own_methods() -> None:
    model = Model(datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC), ["a"])
    encoded = to_json({"m": model}, "input")
    assert encoded == {"m": {"when": "2026-01-02T03:04:00+00:00", "tags": ["a"]}}
    assert from_json(encoded["m"], Model) == model
    assert from_json([encoded["m"]], list[Model]) == [model]


def test_a_model_whose_dump_is_not_json_is_refused_with_its_path() -> None:
    class Leaky(Model):
        def model_dump(self, *, mode: str) -> dict[str, Any]:
            return {"payload": object()}

    leaky = Leaky(datetime.datetime(2026, 1, 1), [])
    with pytest.raises(
        PayloadError, match=r"input\[0\]\.payload: value of type object"
    ):
        to_json([leaky], "input")
