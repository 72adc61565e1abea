"""Instance values in the CLI: ``perdure values`` and the ``history`` tree."""

from __future__ import annotations

import asyncio
import json

import pytest
from _cli_run import run

import perdure
from perdure._core import _history as h
from perdure._tree import render_history
from perdure._tree_data import history_tree

T = 1000.0


@perdure.orchestration(name="Valued")
async def valued(ctx: perdure.OrchestrationContext) -> None:
    ctx.set_value("step", "done")
    ctx.set_value("items", [1, "zwei"])


async def _finished(url: str) -> None:
    async with perdure.Runtime(url, orchestrations=[valued], poll_interval=0.05) as rt:
        await rt.client.start_orchestration("v1", valued)
        await rt.client.wait_for_orchestration("v1", timeout=20)


def test_values_prints_json(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_finished(storage_url))
    code, out, err = run(capsys, "values", "v1", "--db", storage_url)
    assert (code, err) == (0, "")
    assert json.loads(out) == {"step": "done", "items": [1, "zwei"]}
    code, out, err = run(capsys, "values", "nobody", "--db", storage_url)
    assert (code, out) == (1, "")
    assert "nobody" in err and err.startswith("perdure: error:")


def test_value_events_in_the_tree() -> None:
    events = [
        h.OrchestrationStarted(
            event_id=1, timestamp=T, name="V", version="1", values={"n": 1}
        ),
        h.StateValueSet(event_id=2, timestamp=T, key="n", value=2),
        h.ActivityScheduled(event_id=3, timestamp=T, name="A", scope="0.1"),
        h.StateValueSet(event_id=4, timestamp=T, key="x", value={"a": 1}, scope="0.1"),
        h.StateValueCleared(event_id=5, timestamp=T, key="n"),
    ]
    assert render_history(events) == (
        'orchestration V 1  values {"n": 1}\n'
        "scope 0  … running\n"
        "├── #2 set value 'n' = 2  ✓\n"
        "├── task 0.1  … running\n"
        "│   ├── #3 activity A()  … pending\n"
        "│   └── #4 set value 'x' = {\"a\": 1}  ✓\n"
        "└── #5 cleared value 'n'  ✓\n"
        "… running\n"
    )
    tree = history_tree(events)
    assert tree["orchestration"]["values"] == {"n": 1}
    first = tree["root"]["items"][0]
    assert (first["type"], first["status"]) == ("StateValueSet", "note")
