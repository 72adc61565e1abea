"""Golden histories (DESIGN §7): recorded histories must keep replaying.

For every ``tests/histories/*.json`` (see README.md and ``record.py``):

* replay: `perdure.testing.replay` of the stored events reaches the recorded
  status/output/error, and the driver, having replayed them, has nothing
  more to add;
* turn by turn: for each recorded turn, a fresh driver replays the history
  before it, is given that turn's incoming messages (the stored
  OrchestrationStarted, completions, EventRaised, OrchestrationCancelRequested
  events, with their stored fields and timestamp) and must produce exactly
  the stored events of the turn.

A rewound golden (``failed_with``: the program that failed) re-drives the
turns up to the last failure a rewind voided with that program, and a turn
that opens with ``ExecutionRewound`` as a rewind turn (the history before
it replayed with ``rewind=True``).

Events are compared as JSON text after a round trip through the current
code's `event_from_json`/`event_to_json`, so fields added later with
defaults do not break old goldens; ``engine`` on OrchestrationStarted and
``occurred_at`` on delivered events are ignored on both sides.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import _programs
import pytest
import record

from perdure import NondeterminismError
from perdure._core import _history as h
from perdure._core._driver import Driver
from perdure._registry import Registry, name_of
from perdure._turn import build_driver
from perdure.testing import replay

HERE = Path(__file__).resolve().parent
FILES = sorted(HERE.glob("*.json"))

#: Roles of the events a turn delivers (made from incoming messages, not
#: by the code).
DELIVERED_ROLES = ("start", "completion", "delivered")
#: Optional fields added after the first goldens were recorded.
LATER_FIELDS = ("engine", "occurred_at")
_BASE_FIELDS = ("type", "event_id", "timestamp", "source_event_id")
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


# ------------------------------------------------------------ loading


def event_class(kind: str) -> type[h.Event]:
    cls = getattr(h, kind, None)
    assert isinstance(cls, type) and issubclass(cls, h.Event), kind
    return cls


def stored_fields(text: str) -> tuple[type[h.Event], dict[str, Any]]:
    """Event class and the stored JSON object, minus later fields the
    current class does not know."""
    data = json.loads(text)
    cls = event_class(data["type"])
    known = {f.name for f in dataclasses.fields(cls)}
    for key in LATER_FIELDS:
        if key not in known:
            data.pop(key, None)
    return cls, data


def load_event(text: str) -> h.Event:
    """Decode a stored event with the current code."""
    _, data = stored_fields(text)
    return h.event_from_json(_ENCODE(data))


def canonical(event: h.Event) -> str:
    """The current encoding of *event*, without the fields we ignore."""
    data = json.loads(h.event_to_json(event))
    data.pop("occurred_at", None)
    if data["type"] == "OrchestrationStarted":
        data.pop("engine", None)
    return str(_ENCODE(data))


def load_document(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def program(doc: dict[str, Any], failed: bool = False) -> tuple[Any, list[Any]]:
    """The orchestration function and activities a golden was recorded from.

    *failed*: the program that wrote the turns before a rewind, if another.
    """
    name = doc.get("failed_with", doc["orchestration"]) if failed else None
    orchestration = getattr(_programs, name or doc["orchestration"])
    activities = [getattr(_programs, a) for a in doc.get("activities", [])]
    return orchestration, activities


def rewound_failure(doc: dict[str, Any]) -> int:
    """Event id of the last failure a rewind voided (0: never rewound)."""
    markers = [json.loads(text) for text in doc["events"]]
    return max(
        (m["source_event_id"] for m in markers if m["type"] == "ExecutionRewound"),
        default=0,
    )


def new_driver(doc: dict[str, Any], start: h.Event, failed: bool = False) -> Driver:
    """A fresh driver for the golden's orchestration, as after a restart."""
    assert isinstance(start, h.OrchestrationStarted)
    orchestration, activities = program(doc, failed)
    registry = Registry([orchestration], activities)
    odef = registry.orchestration(name_of(orchestration))
    start = dataclasses.replace(start, name=odef.name, version=odef.version)
    return build_driver(registry, doc["instance_id"], doc.get("execution_id", 1), start)


# ------------------------------------------------------------- checks


def check_replay(doc: dict[str, Any]) -> None:
    """(a) Replaying the whole history gives the recorded outcome, adds nothing."""
    events = [load_event(t) for t in doc["events"]]
    orchestration, activities = program(doc)
    result = replay(
        orchestration,
        events,
        activities=activities,
        instance_id=doc["instance_id"],
        execution_id=doc.get("execution_id", 1),
    )
    error = None if result.error is None else result.error.to_json()
    got = {"status": result.status, "output": result.output, "error": error}
    assert got == doc["expected"], doc["name"]
    assert len(result.history) == len(events)

    driver = new_driver(doc, events[0])
    driver.replay(events)
    driver.begin_turn(events[-1].timestamp)
    extra = driver.end_turn().events
    assert extra == [], f"{doc['name']}: replay added {extra}"


def check_turn(doc: dict[str, Any], first: int, last: int) -> None:
    """(b) Re-drive one recorded turn and compare its events byte for byte."""
    texts = doc["events"]
    events = [load_event(t) for t in texts]
    driver = new_driver(doc, events[0], failed=last <= rewound_failure(doc))
    rewinding = isinstance(events[first - 1], h.ExecutionRewound)
    if first > 1:
        driver.replay(events[: first - 1], rewind=rewinding)
    driver.begin_turn(events[first - 1].timestamp)
    for text in texts[first - 1 : last]:
        cls, data = stored_fields(text)
        if cls.role == "rewind":
            continue  # begin_turn wrote it
        if cls.role not in DELIVERED_ROLES:
            break
        source = data.get("source_event_id")
        fields = {k: v for k, v in data.items() if k not in _BASE_FIELDS}
        delivered = driver.deliver(cls, source, **fields)
        assert delivered, f"{doc['name']}: event {data['event_id']} was dropped"
    produced = [canonical(e) for e in driver.end_turn().events]
    stored = [canonical(e) for e in events[first - 1 : last]]
    assert produced == stored, f"{doc['name']}: turn {first}-{last} differs"


def check_turns(doc: dict[str, Any]) -> None:
    """(b) for every turn; the turns must cover the history without gaps."""
    spans = doc["turns"]
    assert spans[0][0] == 1 and spans[-1][1] == len(doc["events"]), spans
    for (_, last), (first, _) in itertools.pairwise(spans):
        assert first == last + 1, spans
    for first, last in spans:
        check_turn(doc, first, last)


def check_file(path: Path) -> None:
    """Every check of one golden file (also run by record.py after writing)."""
    doc = load_document(path)
    assert doc["name"] == path.stem
    check_replay(doc)
    check_turns(doc)


# -------------------------------------------------------------- tests


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_replay(path: Path) -> None:
    check_replay(load_document(path))


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_turns(path: Path) -> None:
    check_turns(load_document(path))


def test_every_scenario_has_its_golden_file() -> None:
    expected = record.all_files()
    missing = [f for f in expected if not (HERE / f"{f}.json").exists()]
    assert not missing, f"golden files missing (deleted?): {missing}"
    assert len(FILES) >= len(expected)
    for path in FILES:
        assert load_document(path)["name"] == path.stem


def test_loader_tolerates_the_later_optional_fields() -> None:
    started = (
        '{"type":"OrchestrationStarted","event_id":1,"timestamp":5.0,'
        '"name":"x","version":"1","engine":2}'
    )
    raised = (
        '{"type":"EventRaised","event_id":2,"timestamp":6.0,'
        '"name":"e","data":1,"occurred_at":5.5}'
    )
    plain = h.OrchestrationStarted(event_id=1, timestamp=5.0, name="x", version="1")
    assert canonical(load_event(started)) == canonical(plain)
    event = h.EventRaised(event_id=2, timestamp=6.0, name="e", data=1)
    assert canonical(load_event(raised)) == canonical(event)


def test_checks_catch_a_changed_history() -> None:
    """The checks are not vacuous: altered goldens fail them."""
    doc = load_document(HERE / "single_activity.json")
    scheduled = json.loads(doc["events"][1])
    scheduled["input"] = "someone else"
    bad_input = {**doc, "events": [doc["events"][0], _ENCODE(scheduled)]}
    bad_input["events"] += doc["events"][2:]
    with pytest.raises(NondeterminismError):
        check_replay(bad_input)
    with pytest.raises(AssertionError):
        check_turn(bad_input, 1, 2)

    completed = json.loads(doc["events"][-1])
    completed["output"] = "something else"
    bad_output = {**doc, "events": [*doc["events"][:-1], _ENCODE(completed)]}
    first, last = doc["turns"][-1]
    with pytest.raises(AssertionError):
        check_turn(bad_output, first, last)
