"""Property tests: random programs with shields, timeouts, task groups.

The programs of `test_determinism` (leaves, tasks, select, join, try) plus
issue 12's API: ``comp``, a compensation block (a task whose steps run in
``try: ... except Cancelled: async with ctx.shield(): <undo>; raise``; each
``do`` step, activity ``c<id>``, once returned registers its undo: activity
``u<id>``, maybe then a timer or a ``ctx.timeout`` around activity ``t<id>``
as a future or a coroutine); ``shield`` (``await ctx.shield(<coroutine>)``),
``shieldleaf`` (``await ctx.shield(<leaf future>)``), ``shieldcomb`` (a
shielded select/join); ``timeout`` (``ctx.timeout(delay, <branch>)``,
``except TimeoutError``); ``ascomp`` (``async for f in ctx.as_completed``);
``group`` (``async with ctx.task_group()``: 2-3 branches, maybe a leaf
awaited in the body or two tasks awaiting one shared future; failures are
reported as a value). A second generator puts 1-3 compensation blocks
under each top-level combinator.

Driven by random deliveries as in `test_determinism` (cancel requests more
likely while shielded work is open). For every run: (a) replay from scratch,
same outcome, no new event; (b) a fresh driver before every turn, identical
history; (c) the accounting, turn structure and scopes of `test_determinism`;
(d) work made directly by an undo, and shielded leaves, are never cancelled;
other ``shielded=True`` events belong to shielded tasks or to a
``ctx.timeout`` inside a shield, and are cancelled only by the program's own
combinators, never by a cascade; (e) nothing shielded is open when the
terminal event is written; (f) each block runs all the undos it registered,
in reverse step order, each after its step completed; (g) a cancel request
before the root returned ends the instance Cancelled, one after it does not;
(h) a timeout / task group whose task compensates ends after the undos.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import hypothesis
from _core_util import Cancel, new_events_after_replay
from hypothesis import HealthCheck, given, settings, strategies as st
from test_determinism import (
    LEAVES,
    Scope,
    apply,
    check_turn_structure,
    check_work_accounting,
    late_completions,
    leaf,
    options,
    short,
)

import perdure
from perdure import Cancelled, OrchestrationContext, PerdureError, durable_async
from perdure._core import _history as h
from perdure._testing_sim import _open_work
from perdure.testing import Simulator, replay

MAX_TURNS = 60
IID = "structured"
UNDO_EXTRAS = ("none", "none", "none", "timer", "tfut", "tcoro")

# ----------------------------------------------------------------- programs


def branch(draw: st.DrawFn, depth: int) -> list[Any]:
    """A leaf, a block of steps run as a task, or a compensation block."""
    kind = draw(st.sampled_from(["leaf", "leaf", "prog", "comp", "nested"]))
    if kind == "prog":
        return ["prog", 0, steps(draw, depth + 1)]
    if kind == "comp":  # the branch's task is the compensation block
        return ["comp", 0, comp_body(draw, depth + 1)]
    if kind == "nested":  # a task whose one step is a compensation block
        return ["prog", 0, [["comp", 0, comp_body(draw, depth + 1)]]]
    return leaf(draw)


def branches(draw: st.DrawFn, depth: int) -> list[Any]:
    return [branch(draw, depth) for _ in range(draw(st.integers(2, 3)))]


def comp_body(draw: st.DrawFn, depth: int) -> list[Any]:
    """``do`` steps (with their undo) mixed with ordinary steps."""
    out: list[Any] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.sampled_from([True, True, False])):
            extra = draw(st.sampled_from(UNDO_EXTRAS))
            out.append(["do", 0, extra, draw(st.integers(1, 50))])
        else:
            out.extend(steps(draw, depth + 1, count=1))
    return out


COMPOSITES = (
    *("task", "select", "join", "try"),
    *("comp", "comp", "shield", "shieldleaf", "shieldcomb", "timeout", "ascomp"),
    "group",
)


def steps(draw: st.DrawFn, depth: int, count: int | None = None) -> list[Any]:
    composite = COMPOSITES if depth < 2 else ()
    out: list[Any] = []
    if count is None:
        count = draw(st.integers(1, 4 if depth == 0 else 3))
    for _ in range(count):
        kind = draw(st.sampled_from((*LEAVES, "status", *composite)))
        if kind in LEAVES:
            out.append(leaf(draw))
        elif kind == "status":
            out.append([kind, 0])
        elif kind in ("task", "try", "shield"):
            out.append([kind, 0, steps(draw, depth + 1)])
        elif kind == "comp":
            out.append([kind, 0, comp_body(draw, depth)])
        elif kind == "shieldleaf":
            out.append([kind, 0, leaf(draw)])
        elif kind == "timeout":
            out.append([kind, 0, draw(st.integers(1, 50)), branch(draw, depth)])
        elif kind in ("select", "ascomp"):
            out.append([kind, 0, branches(draw, depth)])
        elif kind == "shieldcomb":
            combinator = draw(st.sampled_from(["select", "join"]))
            out.append([kind, 0, combinator, branches(draw, depth)])
        elif kind == "join":
            out.append([kind, 0, draw(st.booleans()), branches(draw, depth)])
        else:
            body = leaf(draw) if draw(st.booleans()) else None
            shared = draw(st.sampled_from([None, None, ["act", 0], ["sub", 0]]))
            out.append([kind, 0, body, shared, branches(draw, depth)])
    return out


def is_node(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], str)


def number(node: list[Any], counter: list[int]) -> None:
    """Give every node a unique id, in program order (depth first)."""
    counter[0] += 1
    node[1] = counter[0]
    for child in node[2:]:
        if is_node(child):
            number(child, counter)
        elif isinstance(child, list):
            for item in child:
                number(item, counter)


@st.composite
def programs(draw: st.DrawFn) -> list[Any]:
    program = steps(draw, 0)
    counter = [0]
    for node in program:
        number(node, counter)
    return program


@st.composite
def saga_programs(draw: st.DrawFn) -> list[Any]:
    """Programs built around compensation blocks: each top-level step races,
    joins, groups or times out 1-3 of them (so they get cancelled)."""
    program: list[Any] = []
    for _ in range(draw(st.integers(1, 3))):
        comps = [
            ["comp", 0, comp_body(draw, 1)] for _ in range(draw(st.integers(1, 3)))
        ]
        others = [*comps, leaf(draw)]
        kind = draw(st.sampled_from(SAGA_KINDS))
        if kind in ("select", "ascomp"):
            program.append([kind, 0, others])
        elif kind == "join":
            program.append([kind, 0, draw(st.booleans()), others])
        elif kind == "timeout":
            program.append([kind, 0, draw(st.integers(1, 50)), comps[0]])
        elif kind == "group":
            body = leaf(draw) if draw(st.booleans()) else None
            shared = draw(st.sampled_from([None, ["act", 0]]))
            program.append([kind, 0, body, shared, others])
        elif kind == "shield":
            program.append([kind, 0, [["select", 0, others]]])
        else:
            program.extend(comps)
    counter = [0]
    for node in program:
        number(node, counter)
    return program


SAGA_KINDS = ("select", "ascomp", "join", "timeout", "group", "shield", "comp")


def comp_of(program: list[Any]) -> dict[int, int]:
    """``do`` step id -> id of its compensation block."""
    found: dict[int, int] = {}
    stack: list[Any] = list(program)
    while stack:
        node = stack.pop()
        if node[0] == "comp":
            found.update((item[1], node[1]) for item in node[2] if item[0] == "do")
        for child in node[2:]:
            if is_node(child):
                stack.append(child)
            elif isinstance(child, list):
                stack.extend(child)
    return found


# -------------------------------------------------------------- interpreter

#: Activity/sub name -> scope path expected for it (filled while running).
EXPECTED_SCOPES: dict[str, str] = {}
#: Work futures nothing may cancel: made directly by an undo, or a shielded
#: leaf. Their event ids are read after the live run.
PROTECTED: list[Any] = []
#: Compensation block id -> ids of the ``do`` steps it undid, in order.
COMP_LOG: dict[int, list[int]] = {}
#: How many ``ctx.timeout`` calls ran inside a shield (each: one timer).
SHIELD_TIMEOUTS: list[str] = []
#: Scope paths of shielded tasks (their work is flagged ``shielded`` too).
SHIELD_TASKS: list[str] = []
#: Compensation blocks running their undos now.
COMPENSATING: set[int] = set()
#: Waits that ended before the compensation they wait for (live run).
EARLY: list[str] = []
#: What the live run exercised (for the statistics).
LABELS: set[str] = set()
#: Set when the root returned or raised an Exception.
ROOT_END: dict[str, bool] = {}


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


def start(ctx: OrchestrationContext, node: list[Any], prev: Any, scope: Scope) -> Any:
    """A branch as a future: a leaf's work, or steps as a task."""
    if node[0] in ("prog", "comp"):
        return durable_async(ctx, awaitable(ctx, node, prev, scope))
    return leaf_future(ctx, node, prev, scope)


def awaitable(
    ctx: OrchestrationContext, node: list[Any], prev: Any, scope: Scope
) -> Any:
    """A branch as an awaitable: a leaf's work, or a coroutine of steps."""
    if node[0] == "prog":
        return run_steps(ctx, node[2], prev, scope.child())
    if node[0] == "comp":
        return run_comp(ctx, node, prev, scope.child())
    return leaf_future(ctx, node, prev, scope)


def described(future: Any) -> Any:
    if future.cancelled():
        return "cancelled"
    error = future.exception()
    if error is not None:
        return f"error {type(error).__name__}"
    return future.result()


async def run_steps(
    ctx: OrchestrationContext, program: list[Any], prev: Any, scope: Scope
) -> Any:
    out = []
    for node in program:
        prev = await run_step(ctx, node, prev, scope)
        out.append(prev)
    return out


async def undo_activity(
    ctx: OrchestrationContext, name: str, prev: Any, scope: Scope
) -> Any:
    EXPECTED_SCOPES[name] = scope.path
    return await ctx.schedule_activity(name, prev)


async def undo(ctx: OrchestrationContext, item: list[Any], scope: Scope) -> None:
    """Undo ``do`` step *item* (the task is inside a shield)."""
    extra, delay = item[2], item[3]
    name = f"u{item[1]}"
    EXPECTED_SCOPES[name] = scope.path
    work = ctx.schedule_activity(name, "undo")
    PROTECTED.append(work)
    try:
        await work
        if extra == "timer":
            timer = ctx.schedule_timer(delay)
            PROTECTED.append(timer)
            await timer
        elif extra == "tfut":
            EXPECTED_SCOPES[f"t{item[1]}"] = scope.path
            SHIELD_TIMEOUTS.append(scope.path)
            await ctx.timeout(delay, ctx.schedule_activity(f"t{item[1]}", "undo"))
        elif extra == "tcoro":
            SHIELD_TIMEOUTS.append(scope.path)
            inner_scope = scope.child()
            SHIELD_TASKS.append(inner_scope.path)
            inner = undo_activity(ctx, f"t{item[1]}", "undo", inner_scope)
            await ctx.timeout(delay, inner)
    except PerdureError as exc:
        # A failed undo (or its timeout) does not stop the others.
        LABELS.add(f"undo raised {type(exc).__name__}")


async def run_comp(
    ctx: OrchestrationContext, node: list[Any], prev: Any, scope: Scope
) -> Any:
    done: list[list[Any]] = []
    try:
        out = []
        for item in node[2]:
            if item[0] == "do":
                EXPECTED_SCOPES[f"c{item[1]}"] = scope.path
                prev = await ctx.schedule_activity(f"c{item[1]}", short(prev))
                done.append(item)
            else:
                prev = await run_step(ctx, item, prev, scope)
            out.append(prev)
        return out
    except Cancelled:
        COMP_LOG[node[1]] = [item[1] for item in reversed(done)]
        COMPENSATING.add(node[1])
        async with ctx.shield():
            for item in reversed(done):
                await undo(ctx, item, scope)
        COMPENSATING.discard(node[1])
        raise


def check_compensated(node: list[Any], items: list[Any]) -> None:
    """A timeout (a task group) ends after its cancelled task's undos."""
    for item in items:
        if item[0] == "comp" and item[1] in COMPENSATING:
            EARLY.append(f"{node[0]} {node[1]} ended while {item[1]} compensates")
        if item[0] == "comp" and item[1] in COMP_LOG:
            LABELS.add(f"{node[0]} waited for compensation")


async def awaiter(future: Any) -> Any:
    return await future


def group_start(tg: perdure.TaskGroup, work: Any) -> Any:
    try:
        return tg.start(work)
    except BaseException:
        if inspect.iscoroutine(work):
            work.close()  # refused (cancelled task, closed group)
        raise


async def run_group(
    ctx: OrchestrationContext, node: list[Any], prev: Any, scope: Scope
) -> Any:
    body_leaf, shared, items = node[2], node[3], node[4]
    left: list[Any] = []  # work a failure leaves behind: cancelled on leaving
    try:
        async with ctx.task_group() as tg:
            if shared is not None:  # two tasks fail with it at one point
                left.append(leaf_future(ctx, shared, prev, scope))
            futures = [group_start(tg, awaitable(ctx, i, prev, scope)) for i in items]
            for common in left * 2:
                scope.child()
                futures.append(group_start(tg, awaiter(common)))
            body = None
            if body_leaf is not None:
                left.append(leaf_future(ctx, body_leaf, prev, scope))
                body = await left[-1]
        out = [body, *[f.result() for f in futures]]
    except ExceptionGroup as group:
        LABELS.add("task group: ExceptionGroup")
        out = ["group", [type(e).__name__ for e in group.exceptions]]
    except PerdureError as exc:
        LABELS.add("task group: one failure")
        out = ["failed", type(exc).__name__]
    check_compensated(node, items)
    for work in left:
        work.cancel("abandoned")
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
    if kind == "task":
        return await durable_async(ctx, run_steps(ctx, node[2], prev, scope.child()))
    if kind == "try":
        try:
            return await run_steps(ctx, node[2], prev, scope)
        except PerdureError as exc:
            return f"caught {type(exc).__name__}"
    if kind == "comp":
        return await durable_async(ctx, run_comp(ctx, node, prev, scope.child()))
    if kind == "shield":
        child = scope.child()
        SHIELD_TASKS.append(child.path)
        return await ctx.shield(run_steps(ctx, node[2], prev, child))
    if kind == "shieldleaf":
        work = leaf_future(ctx, node[2], prev, scope)
        PROTECTED.append(work)
        return await ctx.shield(work)
    if kind == "timeout":
        try:
            return await ctx.timeout(node[2], awaitable(ctx, node[3], prev, scope))
        except TimeoutError:
            LABELS.add(f"timeout fired ({node[3][0]})")
            check_compensated(node, [node[3]])
            return "timeout"
    if kind == "group":
        return await run_group(ctx, node, prev, scope)
    before = scope.tasks
    futures = [start(ctx, b, prev, scope) for b in node[-1]]
    if kind == "shieldcomb":  # its tasks become shielded tasks
        tasks = range(before + 1, scope.tasks + 1)
        SHIELD_TASKS.extend(f"{scope.path}.{n}" for n in tasks)
    if kind == "ascomp":
        out = []
        async for future in ctx.as_completed(*futures):
            index = next(i for i, f in enumerate(futures) if f is future)
            out.append([index, described(future)])
            value = str(out[-1][1])
            LABELS.add(f"as_completed {value if value[0] in 'ce' else 'value'}")
        return out
    if kind == "shieldcomb":  # a select/join and all its inputs shielded
        if node[2] == "select":
            return list(await ctx.shield(ctx.select(*futures)))
        return await ctx.shield(ctx.join(*futures))
    if kind == "select":
        return list(await ctx.select(*futures))
    values = await ctx.join(*futures, return_exceptions=node[2])
    return [
        f"error {type(v).__name__}" if isinstance(v, Exception) else v for v in values
    ]


async def structured(ctx: OrchestrationContext, program: list[Any]) -> Any:
    try:
        result = await run_steps(ctx, program, None, Scope("0"))
    except Exception:
        ROOT_END["done"] = True
        raise
    ROOT_END["done"] = True
    return result


def reset() -> None:
    for log in (EXPECTED_SCOPES, COMP_LOG, ROOT_END, LABELS, COMPENSATING):
        log.clear()
    for items in (PROTECTED, SHIELD_TIMEOUTS, SHIELD_TASKS, EARLY):
        items.clear()


# --------------------------------------------------------------- deliveries


def shielded_open(sim: Simulator) -> bool:
    flags = [getattr(e, "shielded", False) for e in sim.history]
    return any(flags[p.event_id - 1] for p in sim.pending())


class Run:
    """One driven run and what the live interpreter recorded on the way."""

    def __init__(self, program: list[Any], data: st.DataObject) -> None:
        reset()
        sim = Simulator(structured, program, instance_id=IID)
        self.root_turn: int | None = 0 if ROOT_END else None
        self.turns: list[list[tuple[Any, ...]]] = []
        for index in range(1, MAX_TURNS + 1):
            if sim.is_finished:
                break
            choices = options(sim) + late_completions(sim)
            failures = [c for c in choices if c[0] == "fail"]
            if failures and data.draw(st.sampled_from([True, *[False] * 7])):
                choices = failures  # failures less often than answers
            else:
                choices = [c for c in choices if c[0] != "fail"]
            odds = [False] * (4 if shielded_open(sim) else 25) + [True, True]
            if data.draw(st.sampled_from(odds), label="cancel?"):
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
            self.turns.append(turn)
            if ROOT_END and self.root_turn is None:
                self.root_turn = index
        self.sim = sim
        self.protected = {w.event_id for w in PROTECTED}
        assert None not in self.protected
        self.comp_log = dict(COMP_LOG)
        self.shield_timeouts = list(SHIELD_TIMEOUTS)
        self.scopes = dict(EXPECTED_SCOPES)
        self.shield_tasks = tuple(SHIELD_TASKS)
        self.labels = sorted(LABELS)
        self.early = list(EARLY)


def rerun_with_restarts(program: list[Any], turns: list[Any]) -> Simulator:
    """(b) The same deliveries, but a fresh driver before every turn."""
    sim = Simulator(structured, program, instance_id=IID)
    for turn in turns:
        sim.restart()
        with sim.turn():
            for action in turn:
                apply(sim, action)
    sim.restart()
    return sim


# --------------------------------------------------------------- properties


def check_scopes(history: list[h.Event], expected: dict[str, str]) -> None:
    """(c) Each activity/sub carries the scope of the task that made it."""
    for event in history:
        if isinstance(event, h.ActivityScheduled | h.SubOrchestrationScheduled):
            assert event.scope == expected[event.name], event


#: Reasons of the cancellations a program makes itself (not cascades).
EXPLICIT = {"lost select", "timed out", "join failed", "task group failed", "abandoned"}


def check_shielded(run: Run) -> None:
    """(d) and (e): shielded work is only cancelled by its own timeout."""
    history = run.sim.history
    cancelled = {e.source_event_id for e in history if e.role == "cancel"}
    assert not run.protected & cancelled, "protected shielded work was cancelled"
    shielded = [e for e in history if getattr(e, "shielded", False)]

    def in_shielded_task(scope: str) -> bool:
        return any(scope == p or scope.startswith(p + ".") for p in run.shield_tasks)

    timers = 0
    for event in shielded:
        if event.event_id in run.protected or in_shielded_task(
            getattr(event, "scope", "")
        ):
            continue  # protected, or made by a shielded task (may be cancelled)
        if isinstance(event, h.TimerCreated):
            timers += 1  # a ctx.timeout's timer inside a shield
        else:  # a ctx.timeout's work made inside a shield
            assert isinstance(event, h.ActivityScheduled), event
            assert event.name.startswith("t"), event
    assert timers == len([p for p in run.shield_timeouts if not in_shielded_task(p)])
    # Scope cascades (cancel request, execution end) pass shielded work by:
    # only the program's own combinators cancel it.
    flagged = {e.event_id for e in shielded}
    for event in history:
        if isinstance(event, Cancel) and event.source_event_id in flagged:
            assert event.reason in EXPLICIT, event
    # Undo work is made inside the shield: its events say so.
    names = {e.event_id: getattr(e, "name", "") for e in history}
    for event_id in run.protected:
        if names[event_id].startswith("u"):
            assert history[event_id - 1].shielded
    if run.sim.is_finished:
        assert history[-1].role == "terminal"
        still_open = {p.event_id for p in _open_work(history[:-1])}
        assert not still_open & run.protected, "ended before protected work"
        assert not still_open & {e.event_id for e in shielded}, "ended too soon"


def check_undo_order(run: Run, program: list[Any]) -> None:
    """(f) Each block's undos: all it registered, in reverse step order."""
    comp = comp_of(program)
    history = run.sim.history
    undone: dict[int, list[int]] = {}
    completed = {
        e.source_event_id: e.event_id
        for e in history
        if isinstance(e, h.ActivityCompleted)
    }
    step_ids = {
        e.name: e.event_id for e in history if isinstance(e, h.ActivityScheduled)
    }
    for event in history:
        if isinstance(event, h.ActivityScheduled) and event.name[0] == "u":
            step = int(event.name[1:])
            undone.setdefault(comp[step], []).append(step)
            # Undo only what completed, and only after it completed.
            done_at = completed[step_ids[f"c{step}"]]
            assert done_at < event.event_id, event
    for block, order in undone.items():
        assert all(a > b for a, b in itertools.pairwise(order)), (block, order)
    for block, order in run.comp_log.items():
        if run.sim.is_finished:
            assert undone.get(block, []) == order, (block, order, undone)
        else:
            assert undone.get(block, []) == order[: len(undone.get(block, []))]


def check_cancel_outcome(run: Run) -> None:
    """(g) A cancel request before the root returned decides the outcome."""
    sim = run.sim
    if not sim.is_finished:
        return
    cancel_turns = [i for i, t in enumerate(run.turns, 1) if t == [("cancel",)]]
    if not cancel_turns:
        assert sim.result.status != "Cancelled"
        return
    root = run.root_turn
    if root is None or cancel_turns[0] < root:
        assert sim.result.status == "Cancelled", sim.result
    elif cancel_turns[0] > root:
        assert sim.result.status in ("Completed", "Failed"), sim.result


def check_run(program: list[Any], run: Run) -> None:
    sim = run.sim
    history = sim.history
    expected = sim.result
    starts = [0]
    again = Simulator(structured, program, instance_id=IID)
    for turn in run.turns:
        starts.append(len(again.history))
        with again.turn():
            for action in turn:
                apply(again, action)
    assert again.history == history  # same deliveries, same history

    # (a) replay from scratch: same outcome, nothing new.
    result = replay(structured, history, instance_id=IID)
    assert (result.status, result.output, result.error) == (
        expected.status,
        expected.output,
        expected.error,
    )
    assert new_events_after_replay(structured, history, IID) == []

    # (b) crash at every turn boundary.
    restarted = rerun_with_restarts(program, run.turns)
    assert restarted.history == history
    assert restarted.result == expected

    # (c) accounting, turn structure, scopes.
    check_turn_structure(history, starts)
    check_work_accounting(sim, starts)
    check_scopes(history, run.scopes)

    # (d)-(h), (h): a timeout/task group waits for its task's undos.
    check_shielded(run)
    check_undo_order(run, program)
    check_cancel_outcome(run)
    assert run.early == []


def coverage(run: Run) -> list[str]:
    """Labels of what a run exercised (``--hypothesis-show-statistics``)."""
    history = run.sim.history
    err = run.sim.result.error
    out = [f"status {run.sim.result.status} {err.type if err else ''}"]
    if run.comp_log:
        out.append("compensation ran")
    undos = [e.event_id for e in history if str(getattr(e, "name", "")).startswith("u")]
    cancels = [e for e in history if isinstance(e, h.OrchestrationCancelRequested)]
    if undos and any(undos[0] < e.event_id for e in cancels):
        out.append("cancel request during compensation")
    return out + run.labels


SETTINGS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(SETTINGS, max_examples=2000)
@given(program=programs(), data=st.data())
def test_structured_programs_replay_deterministically(
    program: list[Any], data: st.DataObject
) -> None:
    run = Run(program, data)
    check_run(program, run)
    for name in coverage(run):
        hypothesis.event(name)


@settings(SETTINGS, max_examples=1200)
@given(program=saga_programs(), data=st.data())
def test_compensation_programs_replay_deterministically(
    program: list[Any], data: st.DataObject
) -> None:
    run = Run(program, data)
    check_run(program, run)
    for name in coverage(run):
        hypothesis.event(name)


# ------------------------------------------------------------ explicit runs


def test_cancel_request_during_compensation() -> None:
    """The interpreter's compensation, step by step (the properties' base)."""
    reset()
    body = [["do", 2, "none", 1], ["do", 3, "timer", 5], ["wait", 4, "e1"]]
    program = [["comp", 1, body]]
    sim = Simulator(structured, program, instance_id=IID)
    sim.complete(sim.pending()[0].event_id, 1)  # c2
    sim.complete(sim.pending()[0].event_id, 2)  # c3
    sim.cancel("stop")  # the wait is cancelled, the undos begin
    assert [e.type for e in sim.last_turn if isinstance(e, Cancel)] == [
        "EventWaitCancelled"
    ]
    (undo3,) = sim.pending()
    assert (undo3.name, undo3.scope) == ("u3", "0.1")
    sim.cancel("again")  # mid-compensation: nothing is cancelled
    assert sim.pending() == [undo3]
    sim.complete(undo3.event_id, None)
    (timer,) = sim.pending()
    sim.fire(timer.event_id)
    (undo2,) = sim.pending()
    assert undo2.name == "u2"
    assert not sim.is_finished  # the execution waits for the undos
    sim.complete(undo2.event_id, None)
    assert sim.result.status == "Cancelled"
    assert [e.type for e in sim.last_turn][-1] == "OrchestrationCancelled"
    assert COMP_LOG == {1: [3, 2]}
    reset()


async def shield_existing(ctx: OrchestrationContext, _: Any) -> Any:
    work = ctx.schedule_activity("a", 1)
    return await ctx.shield(work)


def test_shielding_an_existing_future_holds_it_unmarked() -> None:
    # Decided: the work is held (never cancelled, the execution waits), but
    # its event was written before the shield and stays shielded=False.
    sim = Simulator(shield_existing, None, instance_id="flag")
    sim.cancel("stop")
    (work,) = sim.pending()
    sim.complete(work.event_id, 5)
    assert sim.result.status == "Cancelled"
    (scheduled,) = [e for e in sim.history if isinstance(e, h.ActivityScheduled)]
    assert not scheduled.shielded


async def shielded_leftover(ctx: OrchestrationContext, _: Any) -> Any:
    async def inner() -> Any:
        ctx.schedule_activity("left", 1)  # started, never awaited
        return await ctx.schedule_activity("b", 2)

    return await ctx.shield(inner())


def test_shielded_flag_means_the_execution_waits() -> None:
    sim = Simulator(shielded_leftover, None, instance_id="left")
    left, b = sim.pending()
    sim.complete(b.event_id, 3)
    flagged = {e.event_id for e in sim.history if getattr(e, "shielded", False)}
    assert left.event_id in flagged
    cancels = [e for e in sim.history if isinstance(e, Cancel)]
    assert [e for e in cancels if e.source_event_id in flagged] == []
    assert not sim.is_finished  # held: the execution waits for "left"
    sim.complete(left.event_id, 1)
    assert sim.result.status == "Completed"
