"""examples/instance_state.py: progress read with get_values, while and after.

Run on every backend, with the instance cache on and off (every turn then
replays the stored history, set_value calls included).
"""

from __future__ import annotations

from typing import Any

import pytest
from _examples_support import histories, load

from perdure import events as h
from perdure._core._values import fold_values

example = load("instance_state")


@pytest.mark.parametrize("cache", [10_000, 0], ids=["cached", "replayed"])
async def test_instance_state(storage_url: str, cache: int) -> None:
    seen: dict[str, Any] = await example.run(storage_url, instance_cache_size=cache)
    assert seen["waiting"] == {
        "step": "waiting for the warehouse",
        "packed": {"done": 3, "of": 3},
    }
    assert seen["done"] == {
        "step": "shipped",
        "packed": {"done": 3, "of": 3},
        "tracking": "TRK-77",
    }
    assert seen["output"] == "TRK-77"
    history = (await histories(storage_url, example.ORDER))[example.ORDER]
    assert fold_values(history) == seen["done"]
    steps = [
        e.value for e in history if isinstance(e, h.StateValueSet) and e.key == "step"
    ]
    assert steps == ["packing", "waiting for the warehouse", "shipping", "shipped"]
