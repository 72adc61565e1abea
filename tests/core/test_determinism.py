"""Property tests: random orchestration programs under random deliveries.

A *program* is a small JSON AST handed to one interpreter orchestration:
a list of steps, each a leaf (activity, sub-orchestration, timer, wait,
custom status, ``ctx.patched`` choosing between two activities) or
a composite (a nested ``durable_async`` task, ``select`` or ``join`` over
branches, ``try`` around steps). Hypothesis draws programs, then drives them
with the `Simulator`, drawing which pending work completes next (and how),
which events arrive, sometimes several deliveries per turn, rarely an
instance cancellation. For every run:

(a) replaying the history from scratch reaches the same outcome and adds
    no event;
(b) rebuilding the driver from history before every turn ("crash at every
    turn boundary") and repeating the same deliveries gives the identical
    history;
(c) cancel events only name work unfinished when its turn began, no work
    is completed or cancelled twice, every turn is ordered deliveries →
    scheduling → cancellations → end, nothing is left open at the end, and
    each activity carries the scope of the task that ran when it was made;
(d) patches: one marker per patch id, the new branch only after it and the
    old one only without it; the code with the ``patched`` calls deleted
    (new branch always) replays the history.

A second property deploys the patches mid-flight: turns run by the code
from before them (old branch always), then the rest by the code with the
calls, on a driver rebuilt from history; (a), (b) and (d) hold too.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

from _core_util import new_events_after_replay
from hypothesis import HealthCheck, given, settings, strategies as st

from perdure import OrchestrationContext, PerdureError, durable_async
from perdure._core import _history as h
from perdure.testing import Simulator, replay

LEAVES = ("act", "sub", "timer", "wait")
EVENT_NAMES = ("e1", "e2")
PATCH_IDS = ("p1", "p2")
MAX_TURNS = 40
IID = "prop"

# ----------------------------------------------------------------- programs


def leaf(draw: st.DrawFn) -> list[Any]:
    kind = draw(st.sampled_from(LEAVES))
    if kind == "timer":
        return [kind, 0, draw(st.integers(1, 50))]
    if kind == "wait":
        return [kind, 0, draw(st.sampled_from(EVENT_NAMES))]
    return [kind, 0]


def branches(draw: st.DrawFn, depth: int, patches: int) -> list[Any]:
    out = []
    for _ in range(draw(st.integers(2, 3))):
        if draw(st.booleans()):
            out.append(["prog", 0, steps(draw, depth + 1, patches)])
        else:
            out.append(leaf(draw))
    return out


def steps(draw: st.DrawFn, depth: int, patches: int) -> list[Any]:
    """Steps of a block; *patches*: the weight of patch steps among them."""
    composite = ("task", "select", "join", "try") if depth < 2 else ()
    out = []
    for _ in range(draw(st.integers(1, 4 if depth == 0 else 3))):
        kinds = (*LEAVES, "status", *["patch"] * patches, *composite)
        kind = draw(st.sampled_from(kinds))
        if kind in LEAVES:
            out.append(leaf(draw))
        elif kind == "status":
            out.append([kind, 0])
        elif kind == "patch":
            out.append([kind, 0, draw(st.sampled_from(PATCH_IDS))])
        elif kind in ("task", "try"):
            out.append([kind, 0, steps(draw, depth + 1, patches)])
        elif kind == "select":
            out.append([kind, 0, branches(draw, depth, patches)])
        else:
            out.append([kind, 0, draw(st.booleans()), branches(draw, depth, patches)])
    return out


def number(node: list[Any], counter: list[int]) -> None:
    """Give every node a unique id (activity/sub names derive from it)."""
    counter[0] += 1
    node[1] = counter[0]
    for child in node[2:]:
        if isinstance(child, list):
            for item in child:
                number(item, counter)


@st.composite
def programs(draw: st.DrawFn, patches: int = 1) -> list[Any]:
    program = steps(draw, 0, patches)
    counter = [0]
    for node in program:
        number(node, counter)
    return program


# -------------------------------------------------------------- interpreter


def short(value: Any) -> str:
    return json.dumps(value, sort_keys=True)[:30]


class Scope:
    """The interpreter's own idea of the running task's scope path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tasks = 0

    def child(self) -> Scope:
        self.tasks += 1
        return Scope(f"{self.path}.{self.tasks}")


# Activity/sub name -> scope path expected for it (filled while running).
EXPECTED_SCOPES: dict[str, str] = {}
#: How a patch step decides: "call" asks ``ctx.patched``; "old" is the code
#: from before the patch (old branch), "removed" the code once the call was
#: deleted (new branch). Its activity is ``n<id>`` (new) or ``o<id>`` (old).
PATCH_MODE = {"mode": "call"}


def leaf_future(
    ctx: OrchestrationContext, node: list[Any], prev: Any, scope: Scope
) -> Any:
    kind = node[0]
    if kind == "act":
        EXPECTED_SCOPES[f"a{node[1]}"] = scope.path
        return ctx.schedule_activity(f"a{node[1]}", short(prev))
    if kind == "sub":
        EXPECTED_SCOPES[f"s{node[1]}"] = scope.path
        return ctx.schedule_sub_orchestration(f"s{node[1]}", short(prev))
    if kind == "timer":
        return ctx.schedule_timer(node[2])
    return ctx.schedule_wait(node[2])


async def run_steps(
    ctx: OrchestrationContext, program: list[Any], prev: Any, scope: Scope
) -> Any:
    out = []
    for node in program:
        prev = await run_step(ctx, node, prev, scope)
        out.append(prev)
    return out


async def run_step(
    ctx: OrchestrationContext, node: list[Any], prev: Any, scope: Scope
) -> Any:
    kind = node[0]
    if kind in LEAVES:
        return await leaf_future(ctx, node, prev, scope)
    if kind == "status":
        ctx.set_custom_status(short(prev))
        return prev
    if kind == "patch":
        mode = PATCH_MODE["mode"]
        new = ctx.patched(node[2]) if mode == "call" else mode == "removed"
        name = f"{'n' if new else 'o'}{node[1]}"
        EXPECTED_SCOPES[name] = scope.path
        return await ctx.schedule_activity(name, short(prev))
    if kind == "task":
        return await durable_async(ctx, run_steps(ctx, node[2], prev, scope.child()))
    if kind == "try":
        try:
            return await run_steps(ctx, node[2], prev, scope)
        except PerdureError as exc:
            return f"caught {type(exc).__name__}"
    futures = [
        durable_async(ctx, run_steps(ctx, b[2], prev, scope.child()))
        if b[0] == "prog"
        else leaf_future(ctx, b, prev, scope)
        for b in node[-1]
    ]
    if kind == "select":
        return list(await ctx.select(*futures))
    values = await ctx.join(*futures, return_exceptions=node[2])
    return [
        f"error {type(v).__name__}" if isinstance(v, Exception) else v for v in values
    ]


async def interpreter(ctx: OrchestrationContext, program: list[Any]) -> Any:
    return await run_steps(ctx, program, None, Scope("0"))


# --------------------------------------------------------------- deliveries


def options(sim: Simulator) -> list[tuple[Any, ...]]:
    """Every delivery that makes sense now (each without its drawn value)."""
    out: list[tuple[Any, ...]] = []
    failures: list[tuple[Any, ...]] = []
    for work in sim.pending():
        if work.kind in ("activity", "sub"):
            out.append(("ok", work.event_id))
            failures.append(("fail", work.event_id))
        elif work.kind == "timer":
            out.append(("fire", work.event_id))
    return out + [("raise", name) for name in EVENT_NAMES] + failures


def late_completions(sim: Simulator) -> list[tuple[Any, ...]]:
    """Answers to cancelled work that never completed (a real race)."""
    history = sim.history
    answered = {e.source_event_id for e in history if e.role == "completion"}
    cancelled = [
        e.source_event_id
        for e in history
        if e.type in ("ActivityCancelRequested", "SubOrchestrationCancelRequested")
    ]
    return [("ok", i) for i in cancelled if i not in answered]


def apply(sim: Simulator, action: tuple[Any, ...]) -> None:
    kind = action[0]
    if kind == "ok":
        sim.complete(action[1], action[2])
    elif kind == "fail":
        sim.fail(action[1], ValueError(f"boom {action[1]}"))
    elif kind == "fire":
        sim.fire(action[1])
    elif kind == "raise":
        sim.raise_event(action[1], action[2])
    else:
        sim.cancel("stop")


def drive(
    program: list[Any], data: st.DataObject, deploy_at: int | None = None
) -> tuple[Simulator, list[Any]]:
    """Run *program* with drawn deliveries; return the sim and the turns.

    With *deploy_at*, the first turns run the code from before the patches,
    and from turn *deploy_at* on the code with them, replaying the history.
    """
    if deploy_at is not None:
        PATCH_MODE["mode"] = "old"
    sim = Simulator(interpreter, program, instance_id=IID)
    turns: list[list[tuple[Any, ...]]] = []
    for index in range(MAX_TURNS):
        if index == deploy_at:
            PATCH_MODE["mode"] = "call"
            sim.restart()
        if sim.is_finished:
            break
        choices = options(sim) + late_completions(sim)
        if data.draw(st.sampled_from([False] * 30 + [True]), label="cancel?"):
            turn: list[tuple[Any, ...]] = [("cancel",)]
        else:
            size = data.draw(st.sampled_from([1, 1, 1, 2, 3]), label="batch")
            turn = []
            for _ in range(size):
                pick = choices[data.draw(st.integers(0, len(choices) - 1))]
                if pick[0] in ("ok", "raise"):
                    pick = (*pick, data.draw(st.integers(0, 9), label="value"))
                turn.append(pick)
        answered = {a[1] for a in turn[:-1] if a[0] in ("ok", "fail", "fire")}
        if turn[-1][0] in ("ok", "fail", "fire") and turn[-1][1] in answered:
            turn.pop()  # one answer per work item and turn
        with sim.turn():
            for action in turn:
                apply(sim, action)
        turns.append(turn)
    return sim, turns


# --------------------------------------------------------------- properties


def check_turn_structure(history: list[h.Event], starts: list[int]) -> None:
    """(c) Per turn: deliveries, scheduling, cancellations, then the end."""
    rank = {"scheduling": 1, "marker": 1, "cancel": 2, "terminal": 3}  # inputs: 0
    bounds = [*starts, len(history)]
    for begin, end in itertools.pairwise(bounds):
        ranks = [rank.get(e.role, 0) for e in history[begin:end]]
        assert ranks == sorted(ranks), [e.type for e in history[begin:end]]


def check_work_accounting(sim: Simulator, starts: list[int]) -> None:
    """(c) Cancels name unfinished work; nothing answered or cancelled twice."""
    history = sim.history
    work = {e.event_id: e.work for e in history if e.role == "scheduling"}
    completed = Counter(e.source_event_id for e in history if e.role == "completion")
    cancels = Counter(e.source_event_id for e in history if e.role == "cancel")
    assert max(completed.values(), default=0) <= 1
    assert max(cancels.values(), default=0) <= 1
    turn_start = 0
    for index, event in enumerate(history):
        if index in starts:
            turn_start = index
        if event.role == "cancel":
            source = event.source_event_id
            assert source is not None and source < event.event_id
            assert work[source] == event.work  # same kind of work
            earlier = history[:turn_start]
            assert not any(
                e.role == "completion" and e.source_event_id == source for e in earlier
            ), f"event {event.event_id} cancels work that had completed"
    if sim.is_finished:
        assert sim.pending() == []


def check_scopes(history: list[h.Event]) -> None:
    """(c) Each activity/sub carries the scope of the task that made it."""
    for event in history:
        if isinstance(event, h.ActivityScheduled | h.SubOrchestrationScheduled):
            assert event.scope == EXPECTED_SCOPES[event.name], event


def patch_ids(program: list[Any]) -> dict[int, str]:
    """Node id -> patch id of every patch step of *program*."""
    found: dict[int, str] = {}
    stack = list(program)
    while stack:
        node = stack.pop()
        if node[0] == "patch":
            found[node[1]] = node[2]
        for child in node[2:]:
            if isinstance(child, list):
                stack.extend(child)
    return found


def check_patches(program: list[Any], history: list[h.Event]) -> None:
    """(d) One marker per id; new branches after it, old ones without it."""
    marked: dict[str, int] = {}
    for event in history:
        if isinstance(event, h.PatchApplied):
            assert event.patch_id not in marked, "two markers for one id"
            marked[event.patch_id] = event.event_id
    of = patch_ids(program)
    for event in history:
        if isinstance(event, h.ActivityScheduled) and event.name[0] in "no":
            at = marked.get(of[int(event.name[1:])], event.event_id)
            assert (at < event.event_id) == (event.name[0] == "n"), (event, marked)


def replay_removed(history: list[h.Event], expected: Any) -> None:
    """(d) The code with the calls deleted replays a history with markers."""
    PATCH_MODE["mode"] = "removed"
    try:
        result = replay(interpreter, history, instance_id=IID)
        assert (result.status, result.output, result.error) == expected
        assert new_events_after_replay(interpreter, history, IID) == []
    finally:
        PATCH_MODE["mode"] = "call"


def rerun_with_restarts(
    program: list[Any], turns: list[Any], deploy_at: int | None = None
) -> Simulator:
    """(b) The same deliveries, but a fresh driver before every turn."""
    if deploy_at is not None:
        PATCH_MODE["mode"] = "old"
    sim = Simulator(interpreter, program, instance_id=IID)
    for index, turn in enumerate(turns):
        if index == deploy_at:
            PATCH_MODE["mode"] = "call"
        sim.restart()
        with sim.turn():
            for action in turn:
                apply(sim, action)
    sim.restart()
    return sim


@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(program=programs(), data=st.data())
def test_random_programs_replay_deterministically(
    program: list[Any], data: st.DataObject
) -> None:
    EXPECTED_SCOPES.clear()
    sim, turns = drive(program, data)
    history = sim.history
    starts = [0]
    replayed = Simulator(interpreter, program, instance_id=IID)
    for turn in turns:
        starts.append(len(replayed.history))
        with replayed.turn():
            for action in turn:
                apply(replayed, action)
    assert replayed.history == history  # same deliveries, same history

    # (a) replay from scratch: same outcome, nothing new.
    result = replay(interpreter, history, instance_id=IID)
    expected = sim.result
    assert (result.status, result.output, result.error) == (
        expected.status,
        expected.output,
        expected.error,
    )
    assert new_events_after_replay(interpreter, history, IID) == []

    # (b) crash at every turn boundary.
    restarted = rerun_with_restarts(program, turns)
    assert restarted.history == history
    assert restarted.result == expected

    # (c) accounting, turn structure and scope attribution.
    check_turn_structure(history, starts)
    check_work_accounting(sim, starts)
    check_scopes(history)

    # (d) patches: every decision was live (True); deleting the calls.
    check_patches(program, history)
    assert not any(
        e.name.startswith("o") for e in history if isinstance(e, h.ActivityScheduled)
    )
    replay_removed(history, (expected.status, expected.output, expected.error))


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(program=programs(patches=4), data=st.data())
def test_patches_deployed_mid_flight(program: list[Any], data: st.DataObject) -> None:
    EXPECTED_SCOPES.clear()
    deploy_at = data.draw(st.integers(0, 3), label="deploy at turn")
    try:
        sim, turns = drive(program, data, deploy_at)
        history = sim.history
        expected = sim.result

        # (a) the code with the calls replays the mixed history whole.
        result = replay(interpreter, history, instance_id=IID)
        assert (result.status, result.output, result.error) == (
            expected.status,
            expected.output,
            expected.error,
        )
        assert new_events_after_replay(interpreter, history, IID) == []

        # (b) crash at every turn boundary, the deploy at the same turn.
        restarted = rerun_with_restarts(program, turns, deploy_at)
        assert restarted.history == history
        assert restarted.result == expected

        # (d) one decision per id: old branches only where no marker precedes.
        check_patches(program, history)
        check_scopes(history)
    finally:
        PATCH_MODE["mode"] = "call"
