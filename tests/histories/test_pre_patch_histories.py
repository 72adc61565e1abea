"""Every golden recorded before ``ctx.patched`` existed replays to False.

Each such golden is replayed against its program patched at the start and
at the end: ``if ctx.patched(...)`` there would schedule new work first (so
a True would not match the history) and otherwise runs the program as it
was. The history holds no marker, so every answer must be False, the
outcome the recorded one, and the replay must add no event (DESIGN §9).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_golden import FILES, load_document, load_event, program

import perdure
from perdure import OrchestrationContext
from perdure._core import _history as h
from perdure._core._driver import Driver
from perdure._registry import Registry, name_of
from perdure._turn import build_driver
from perdure.testing import replay

#: Goldens of the patch feature itself hold markers: not "before the patch".
PRE_PATCH = [
    f
    for f in FILES
    if not any('"PatchApplied"' in e for e in load_document(f)["events"])
]


def patched_version(
    original: Callable[..., Any], answers: list[bool]
) -> Callable[..., Any]:
    """*original* with a patch point before its body and one after it."""
    odef = original.__perdure_orchestration__  # type: ignore[attr-defined]

    @functools.wraps(original)
    async def patched(ctx: OrchestrationContext, *args: Any) -> Any:
        answers.append(ctx.patched("probe-start"))
        if answers[-1]:
            await ctx.schedule_activity("NewFirstStep")
        output = await original(ctx, *args)
        answers.append(ctx.patched("probe-end"))
        if answers[-1]:
            ctx.set_custom_status("new last step")
        return output

    # Resolved here: the wrapper's globals are not the program module's.
    patched.__annotations__ = typing.get_type_hints(original)
    return perdure.orchestration(name=odef.name, version=odef.version)(patched)


def replayed_driver(
    orchestration: Callable[..., Any],
    activities: list[Any],
    doc: dict[str, Any],
    events: list[h.Event],
) -> Driver:
    registry = Registry([orchestration], activities)
    start = events[0]
    assert isinstance(start, h.OrchestrationStarted)
    odef = registry.orchestration(name_of(orchestration))
    assert (odef.name, odef.version) == (start.name, start.version or odef.version)
    driver = build_driver(
        registry, doc["instance_id"], doc.get("execution_id", 1), start
    )
    driver.replay(events)
    return driver


def test_most_goldens_are_from_before_the_patch() -> None:
    assert len(PRE_PATCH) >= 51


@pytest.mark.parametrize("path", PRE_PATCH, ids=[f.stem for f in PRE_PATCH])
def test_a_pre_patch_golden_replays_to_false(path: Path) -> None:
    doc = load_document(path)
    events = [load_event(text) for text in doc["events"]]
    original, activities = program(doc)
    answers: list[bool] = []
    code = patched_version(original, answers)
    result = replay(
        code,
        events,
        activities=activities,
        instance_id=doc["instance_id"],
        execution_id=doc.get("execution_id", 1),
    )
    error = None if result.error is None else result.error.to_json()
    assert {"status": result.status, "output": result.output, "error": error} == doc[
        "expected"
    ]
    assert answers and not any(answers), answers

    driver = replayed_driver(code, activities, doc, events)
    driver.begin_turn(events[-1].timestamp)
    assert driver.end_turn().events == []


def test_the_check_is_not_vacuous_a_marker_makes_it_true() -> None:
    """With a probe-start marker (anywhere in the execution) the answer is
    True, the new first step does not match the history, and replay fails."""
    doc = load_document(Path(__file__).parent / "single_activity.json")
    events = [load_event(text) for text in doc["events"]]
    marker = h.PatchApplied(
        event_id=len(events) + 1, timestamp=events[-1].timestamp, patch_id="probe-start"
    )
    original, _ = program(doc)
    answers: list[bool] = []
    with pytest.raises(perdure.NondeterminismError, match="NewFirstStep"):
        replay(patched_version(original, answers), [*events, marker])
    assert answers == [True]
