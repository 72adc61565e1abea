"""DESIGN §8, issue 12: ``ctx.shield`` (block and awaitable forms).

Pure kernel: every scenario runs in a `Twin` (its driver is also rebuilt
from the history before every turn, with the same history as a result) and
is replayed from scratch at the end.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _core_util import by_name, check_replay, of_type, types
from _structured_util import Twin, flags, last_types

import perdure
from perdure import Cancelled, OrchestrationContext, durable_async, events as h
from perdure._core._history import event_to_json
from perdure.testing import Simulator, replay


# ------------------------------------------------------------ block form
@perdure.orchestration
async def compensates(ctx: OrchestrationContext) -> list[str]:
    seen: list[str] = []

    async def work() -> str:
        try:
            await ctx.schedule_activity("Slow")
        except Cancelled:
            async with ctx.shield():
                seen.append(await ctx.schedule_activity("Undo"))
            raise
        return "slow"

    task = durable_async(ctx, work())
    index, _ = await ctx.select2(ctx.schedule_activity("Fast"), task)
    seen.append(f"winner {index}")
    try:
        await task  # draining: settles when its coroutine ends
    except Cancelled:
        seen.append("task cancelled")
    return seen


def test_block_form_compensates_after_losing() -> None:
    sim = Twin(compensates)
    assert flags(sim.history) == [
        ("ActivityScheduled", "Slow", False),
        ("ActivityScheduled", "Fast", False),
    ]
    sim.complete(3, "fast")  # the task loses; its except block compensates
    assert last_types(sim) == [
        "ActivityCompleted",
        "ActivityScheduled",
        "ActivityCancelRequested",
    ]
    assert flags(sim.last_turn) == [("ActivityScheduled", "Undo", True)]
    assert sim.result.status == "Running"
    sim.complete(by_name(sim, "Undo"), "undone")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == ["winner 0", "undone", "task cancelled"]
    check_replay(compensates, sim)


@perdure.orchestration
async def cancelled_inside(ctx: OrchestrationContext) -> list[str]:
    seen: list[str] = []
    before = ctx.schedule_timer(100)  # unshielded: the cascade cancels it

    async def work() -> None:
        async with ctx.shield():
            first = ctx.schedule_activity("Step1")
            seen.append(await first)
            seen.append(await ctx.schedule_activity("Step2"))
        try:
            await first  # done, but the task was cancelled: raises
        except Cancelled:
            seen.append("await after shield: Cancelled")
        try:
            ctx.schedule_activity("After")
        except Cancelled:
            seen.append("schedule after shield: Cancelled")
        try:
            await before
        except Cancelled:
            seen.append("await before: Cancelled")

    task = durable_async(ctx, work())
    await ctx.select2(ctx.schedule_wait("stop"), task)
    try:
        await task
    except Cancelled:
        seen.append("task settled")
    return seen


def test_task_cancelled_inside_a_block_drains_then_is_cancelled_again() -> None:
    sim = Twin(cancelled_inside)
    assert flags(sim.history) == [
        ("TimerCreated", "", False),
        ("ActivityScheduled", "Step1", True),
        ("EventWaitStarted", "stop", False),
    ]
    sim.raise_event("stop")  # the task loses while inside its shield
    assert last_types(sim) == ["EventRaised"]  # Step1 is left alone
    sim.complete(by_name(sim, "Step1"), "one")
    assert flags(sim.last_turn) == [("ActivityScheduled", "Step2", True)]
    assert sim.result.status == "Running"
    sim.complete(by_name(sim, "Step2"), "two")  # it leaves the shield: Cancelled again
    assert last_types(sim) == [
        "ActivityCompleted",
        "TimerCancelled",
        "OrchestrationCompleted",
    ]
    assert sim.result.output == [
        "one",
        "two",
        "await after shield: Cancelled",
        "schedule after shield: Cancelled",
        "await before: Cancelled",
        "task settled",
    ]
    check_replay(cancelled_inside, sim)


# ------------------------------------------------------- awaitable form
async def two_steps(ctx: OrchestrationContext) -> str:
    a = await ctx.schedule_activity("A")
    b = await ctx.schedule_activity("B")
    return f"{a}+{b}"


@perdure.orchestration
async def shields_coroutine(ctx: OrchestrationContext) -> list[Any]:
    seen: list[Any] = []

    async def work() -> None:
        try:
            seen.append(await ctx.shield(two_steps(ctx)))
        except Cancelled:
            seen.append("Cancelled after the shielded wait")

    task = durable_async(ctx, work())
    seen.append(await ctx.select2(ctx.schedule_wait("stop"), task))
    try:
        await task  # ends cancelled once the shielded wait is over
    except Cancelled:
        seen.append("task cancelled")
    return seen


def test_awaitable_form_with_a_coroutine() -> None:
    sim = Twin(shields_coroutine)
    sim.raise_event("stop")  # the waiting task loses; the shielded task runs on
    assert last_types(sim) == ["EventRaised"]
    sim.complete(2, "a")
    sim.complete(by_name(sim, "B"), "b")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    # The value reached the cancelled task: the wait was shielded too.
    assert sim.result.output == [[0, None], "a+b", "task cancelled"]
    check_replay(shields_coroutine, sim)


@perdure.orchestration
async def shields_future(ctx: OrchestrationContext) -> list[Any]:
    seen: list[Any] = []

    async def work() -> None:
        seen.append(await ctx.shield(ctx.schedule_activity("X")))

    task = durable_async(ctx, work())
    seen.append(await ctx.select2(ctx.schedule_wait("stop"), task))
    return seen


def test_awaitable_form_with_a_future() -> None:
    sim = Twin(shields_future)
    # X was scheduled (its event built) before ctx.shield saw it: the
    # history does not say it is shielded, though it is.
    assert flags(sim.history)[0] == ("ActivityScheduled", "X", False)
    sim.raise_event("stop")
    assert last_types(sim) == ["EventRaised"]  # X is not cancelled
    assert sim.result.status == "Running"  # the root returned; X holds the end
    sim.complete(2, "x")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    # The outcome was decided when the root returned.
    assert sim.result.output == [[0, None]]
    check_replay(shields_future, sim)


@perdure.orchestration
async def shields_from_cancelled(ctx: OrchestrationContext) -> list[Any]:
    seen: list[Any] = []

    async def work() -> None:
        try:
            await ctx.schedule_wait("never")
        except Cancelled:
            seen.append(await ctx.shield(two_steps(ctx)))  # compensation
            raise

    task = durable_async(ctx, work())
    await ctx.select2(ctx.schedule_timer(5), task)
    try:
        await task
    except Cancelled:
        seen.append("task cancelled")
    return seen


def test_awaitable_form_with_a_coroutine_from_a_cancelled_task() -> None:
    sim = Twin(shields_from_cancelled)
    sim.advance(5)
    assert flags(sim.last_turn) == [("ActivityScheduled", "A", True)]
    sim.complete(by_name(sim, "A"), "a")
    sim.complete(by_name(sim, "B"), "b")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == ["a+b", "task cancelled"]
    check_replay(shields_from_cancelled, sim)


@perdure.orchestration
async def shields_select(ctx: OrchestrationContext) -> list[Any]:
    seen: list[Any] = []

    async def work() -> None:
        race = ctx.select(ctx.schedule_activity("A"), ctx.schedule_activity("B"))
        seen.append(await ctx.shield(race))

    task = durable_async(ctx, work())
    seen.append(await ctx.select2(ctx.schedule_wait("stop"), task))
    try:
        await task  # ends cancelled once the shielded wait is over
    except Cancelled:
        seen.append("task cancelled")
    return seen


def test_awaitable_form_with_a_select_shields_all_its_inputs() -> None:
    sim = Twin(shields_select)
    sim.raise_event("stop")
    assert last_types(sim) == ["EventRaised"]  # neither A nor B cancelled
    sim.complete(3, "b")  # the select still reacts: A loses (its own cancel)
    assert last_types(sim) == [
        "ActivityCompleted",
        "ActivityCancelRequested",
        "OrchestrationCompleted",
    ]
    assert of_type(sim.last_turn, h.ActivityCancelRequested)[0].source_event_id == 2
    assert sim.result.output == [[0, None], [1, "b"], "task cancelled"]
    check_replay(shields_select, sim)


@perdure.orchestration
async def shield_without_argument(ctx: OrchestrationContext) -> str:
    try:
        await ctx.shield()
    except TypeError as exc:
        return str(exc)
    return "no error"


def test_awaiting_shield_without_argument_is_a_type_error() -> None:
    sim = Twin(shield_without_argument)
    assert sim.result.output == (
        "ctx.shield() without an argument is a block: write `async with ctx.shield():`"
    )
    check_replay(shield_without_argument, sim)


# --------------------------------------- what cancels shielded work, what not
async def grandchild(ctx: OrchestrationContext) -> None:
    async with ctx.shield():
        ctx.schedule_activity("Shielded")
    ctx.schedule_activity("Plain")
    await ctx.schedule_wait("never")


async def parent(ctx: OrchestrationContext) -> None:
    durable_async(ctx, grandchild(ctx))
    await ctx.schedule_wait("never either")


@perdure.orchestration
async def cascades(ctx: OrchestrationContext, how: str) -> str:
    task = durable_async(ctx, parent(ctx))
    if how == "lost select":
        await ctx.select2(ctx.schedule_timer(10), task)
    elif how == "parent cancel":
        await ctx.schedule_timer(10)
        task.cancel("by the root")
    else:  # "cancel_instance", "execution end"
        await ctx.schedule_wait("go")
    return how


@pytest.mark.parametrize(
    "how", ["lost select", "parent cancel", "cancel_instance", "execution end"]
)
def test_scope_cascades_pass_shielded_work_by(how: str) -> None:
    sim = Twin(cascades, how)
    assert flags(sim.history)[:2] == [
        ("ActivityScheduled", "Shielded", True),
        ("ActivityScheduled", "Plain", False),
    ]
    shielded = by_name(sim, "Shielded")
    if how in ("lost select", "parent cancel"):
        sim.fire(sim.pending("timer")[0].event_id)
    elif how == "cancel_instance":
        sim.cancel("operator")
    else:
        sim.raise_event("go")
    cancelled = {e.source_event_id for e in sim.history if e.role == "cancel"}
    assert shielded not in cancelled
    assert 3 in cancelled  # Plain
    assert [p.name for p in sim.pending()] == ["Shielded"]
    assert sim.result.status == "Running"  # the end waits for it
    sim.complete(shielded, "done")
    assert last_types(sim) == [
        "ActivityCompleted",
        "OrchestrationCancelled"
        if how == "cancel_instance"
        else "OrchestrationCompleted",
    ]
    check_replay(cascades, sim)


@perdure.orchestration
async def explicit_cancel(ctx: OrchestrationContext) -> str:
    async with ctx.shield():
        work = ctx.schedule_activity("Shielded")
        sub = ctx.schedule_sub_orchestration("Child")
    await ctx.schedule_timer(10)
    work.cancel("explicitly")
    sub.cancel("explicitly")
    try:
        await work
    except Cancelled as exc:
        return f"Cancelled: {exc}"
    return "not cancelled"


def test_explicit_cancel_stops_shielded_work() -> None:
    sim = Twin(explicit_cancel)
    sim.advance(10)
    assert last_types(sim) == [
        "TimerFired",
        "ActivityCancelRequested",
        "SubOrchestrationCancelRequested",
        "OrchestrationCompleted",
    ]
    assert sim.result.output == "Cancelled: explicitly"
    check_replay(explicit_cancel, sim)


# ------------------------------------------------- the end of the execution
@perdure.orchestration
async def ends_with_held_work(ctx: OrchestrationContext) -> str:
    async def compensating() -> None:
        try:
            await ctx.schedule_wait("never")
        except Cancelled:
            async with ctx.shield():
                await ctx.schedule_activity("Undo")
            raise

    async with ctx.shield():
        ctx.schedule_activity("Shielded")
    durable_async(ctx, compensating())
    ctx.schedule_activity("Unshielded")
    return "returned"


def test_end_waits_for_shielded_work_and_draining_tasks() -> None:
    sim = Twin(ends_with_held_work)
    # The root returned: the unshielded work and the task were cancelled at
    # once, the task compensates, nothing ends yet.
    assert sim.result.status == "Running"
    assert [p.name for p in sim.pending()] == ["Shielded", "Undo"]
    sim.complete(by_name(sim, "Undo"), "undone")  # the task settles
    assert last_types(sim) == ["ActivityCompleted"]
    sim.complete(by_name(sim, "Shielded"), "done")  # the last held thing
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == "returned"
    check_replay(ends_with_held_work, sim)


@perdure.orchestration
async def leftovers(ctx: OrchestrationContext) -> str:
    async def shielded_task() -> None:
        ctx.schedule_timer(1000)  # work of a shielded task, never awaited
        await ctx.schedule_activity("A")

    async with ctx.shield():
        durable_async(ctx, shielded_task())
    return "returned"


def test_work_a_shielded_task_leaves_behind_holds_the_end_too() -> None:
    sim = Twin(leftovers)
    # Marked shielded in history (work of a shielded task), and held: the
    # flag means the execution waits for it and no outside cascade stops it.
    assert flags(sim.history) == [
        ("TimerCreated", "", True),
        ("ActivityScheduled", "A", True),
    ]
    assert sim.result.status == "Running"  # the shielded task holds the end
    sim.complete(3, "a")
    assert [(e.type, e.source_event_id) for e in sim.last_turn] == [
        ("ActivityCompleted", 3),
    ]
    assert sim.result.status == "Running"  # its timer still holds it
    sim.fire(2)
    assert [(e.type, e.source_event_id) for e in sim.last_turn] == [
        ("TimerFired", 2),
        ("OrchestrationCompleted", None),
    ]
    check_replay(leftovers, sim)


@perdure.orchestration
async def leaves_shielded_timer(ctx: OrchestrationContext) -> str:
    async def cleanup() -> None:
        try:
            await ctx.schedule_wait("never")
        except Cancelled:
            async with ctx.shield():
                ctx.schedule_timer(1000)  # shielded, never awaited
                await ctx.schedule_activity("Undo")
            raise

    durable_async(ctx, cleanup())
    return "returned"


def test_shielded_work_left_behind_holds_the_end_until_it_settles() -> None:
    sim = Twin(leaves_shielded_timer)
    sim.complete(by_name(sim, "Undo"), "undone")  # the draining task ends
    assert last_types(sim) == ["ActivityCompleted"]
    assert [p.kind for p in sim.pending()] == ["timer"]
    sim.advance(1000)
    assert last_types(sim) == ["TimerFired", "OrchestrationCompleted"]
    check_replay(leaves_shielded_timer, sim)


# ------------------------------------------------ cancel_instance, continue
@perdure.orchestration
async def saga(ctx: OrchestrationContext) -> str:
    try:
        await ctx.schedule_activity("Book")
        await ctx.schedule_wait("approval")
    except Cancelled:
        async with ctx.shield():
            await ctx.schedule_activity("Unbook")
            await ctx.schedule_activity("Notify")
        raise
    return "booked"


def test_cancel_instance_mid_compensation_finishes_it_then_ends_cancelled() -> None:
    sim = Twin(saga)
    sim.complete(2, "booked")
    sim.cancel("operator")
    assert last_types(sim) == [
        "OrchestrationCancelRequested",
        "ActivityScheduled",
        "EventWaitCancelled",
    ]
    assert sim.result.status == "Running"
    sim.cancel("again, while compensating")  # changes nothing
    assert last_types(sim) == ["OrchestrationCancelRequested"]
    sim.complete(by_name(sim, "Unbook"), "unbooked")
    assert flags(sim.last_turn) == [("ActivityScheduled", "Notify", True)]
    sim.complete(by_name(sim, "Notify"), "notified")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCancelled"]
    assert sim.result.status == "Cancelled"
    check_replay(saga, sim)


@perdure.orchestration
async def returns_while_shielded(ctx: OrchestrationContext) -> str:
    async with ctx.shield():
        ctx.schedule_activity("Audit")
    return "done"


def test_cancel_after_the_root_returned_leaves_the_outcome_completed() -> None:
    sim = Twin(returns_while_shielded)
    assert sim.result.status == "Running"
    sim.cancel("too late")
    assert last_types(sim) == ["OrchestrationCancelRequested"]
    sim.complete(2, "audited")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == "done"
    check_replay(returns_while_shielded, sim)


@perdure.orchestration
async def continues_from_cancelled_shield(ctx: OrchestrationContext) -> list[str]:
    seen: list[str] = []

    async def loser() -> None:
        try:
            await ctx.schedule_wait("never")
        except Cancelled:
            async with ctx.shield():
                try:
                    ctx.continue_as_new("from a cancelled task")
                except Cancelled:
                    seen.append("continue_as_new: Cancelled")
                seen.append(await ctx.schedule_activity("Cleanup"))
            raise

    task = durable_async(ctx, loser())
    await ctx.select2(ctx.schedule_timer(5), task)
    try:
        await task
    except Cancelled:
        seen.append("task cancelled")
    return seen


def test_continue_as_new_in_a_cancelled_shielded_task_raises_cancelled() -> None:
    sim = Twin(continues_from_cancelled_shield)
    sim.advance(5)
    sim.complete(by_name(sim, "Cleanup"), "cleaned")
    assert sim.result.status == "Completed"
    assert sim.result.output == [
        "continue_as_new: Cancelled",
        "cleaned",
        "task cancelled",
    ]
    check_replay(continues_from_cancelled_shield, sim)


@perdure.orchestration
async def continues_with_shielded_work(ctx: OrchestrationContext, n: int) -> None:
    async with ctx.shield():
        ctx.schedule_activity("Flush", n)
    ctx.schedule_timer(60)  # unshielded: cancelled at once
    ctx.continue_as_new(n + 1)


def test_continue_as_new_waits_for_shielded_work() -> None:
    sim = Twin(continues_with_shielded_work, 0)
    assert types(sim.history) == [
        "OrchestrationStarted",
        "ActivityScheduled",
        "TimerCreated",
        "TimerCancelled",
    ]
    assert sim.result.status == "Running"
    sim.complete(2, "flushed")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationContinuedAsNew"]
    assert sim.result.status == "ContinuedAsNew"
    assert sim.result.output == 1
    check_replay(continues_with_shielded_work, sim)


# ------------------------------------------------------- the history flag
@perdure.orchestration
async def every_kind(ctx: OrchestrationContext, inside: bool) -> None:
    def start_all() -> None:
        ctx.schedule_activity("A")
        ctx.schedule_timer(10)
        ctx.schedule_wait("E")
        ctx.schedule_sub_orchestration("Child")

    if inside:
        async with ctx.shield():
            start_all()
    else:
        start_all()
    await ctx.schedule_wait("never")


@pytest.mark.parametrize("inside", [True, False])
def test_scheduling_events_say_whether_they_are_shielded(inside: bool) -> None:
    sim = Twin(every_kind, inside)
    assert flags(sim.history) == [
        ("ActivityScheduled", "A", inside),
        ("TimerCreated", "", inside),
        ("EventWaitStarted", "E", inside),
        ("SubOrchestrationScheduled", "Child", inside),
        ("EventWaitStarted", "never", False),
    ]
    for event in sim.history:  # in stored JSON only when true
        assert ('"shielded":true' in event_to_json(event)) == (
            inside and getattr(event, "shielded", False)
        )
    check_replay(every_kind, sim)


# ------------------------------------------------------ the refusal hint
@perdure.orchestration
async def refuses(ctx: OrchestrationContext) -> list[str]:
    seen: list[str] = []

    async def stubborn(tag: str) -> None:
        try:
            await ctx.schedule_wait(f"never {tag}")
        except Cancelled:
            for attempt in range(2):
                try:
                    ctx.schedule_activity(f"Cleanup {tag}")
                except Cancelled:
                    seen.append(f"{tag} refused {attempt}")
            raise

    one = durable_async(ctx, stubborn("one"))
    two = durable_async(ctx, stubborn("two"))
    await ctx.schedule_timer(1)
    await ctx.select(ctx.schedule_timer(1), ctx.join(one, two))
    await ctx.schedule_timer(1)
    return seen


def hints(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "perdure.orchestration"
    ]


def test_refused_call_is_logged_once_per_task_with_a_hint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "perdure.orchestration")
    sim = Simulator(refuses, instance_id="refusing")
    sim.restart()
    sim.advance(1)
    assert hints(caplog) == []
    sim.restart()
    sim.advance(1)  # the join loses: both tasks are cancelled and refused
    records = hints(caplog)
    assert [level for level, _ in records] == [logging.WARNING, logging.WARNING]
    assert [message for _, message in records] == [
        f"[refusing] task scope {scope} was cancelled (lost select) and then "
        "started durable work, which raised Cancelled; work that must run "
        "after cancellation (compensation, cleanup) goes inside "
        "`async with ctx.shield():`"
        for scope in ("0.1", "0.2")
    ]
    caplog.clear()
    sim.restart()  # replays log nothing
    sim.advance(1)
    assert sim.result.output == [
        "one refused 0",
        "one refused 1",
        "two refused 0",
        "two refused 1",
    ]
    assert hints(caplog) == []
    replay(refuses, sim.history, instance_id="refusing")
    assert hints(caplog) == []
    check_replay(refuses, sim)


# ---------------------------------------------------------------- nesting
@perdure.orchestration
async def nested(ctx: OrchestrationContext) -> list[str]:
    seen: list[str] = []

    async def work() -> None:
        async with ctx.shield():
            async with ctx.shield():
                seen.append(await ctx.schedule_activity("Inner"))
            seen.append(await ctx.schedule_activity("Outer"))  # still shielded
        try:
            ctx.schedule_activity("Outside")
        except Cancelled:
            seen.append("outside: Cancelled")

    task = durable_async(ctx, work())
    await ctx.select2(ctx.schedule_wait("stop"), task)
    try:
        await task
    except Cancelled:
        seen.append("task cancelled")
    return seen


def test_nested_shields_shield_until_the_outermost_is_left() -> None:
    sim = Twin(nested)
    sim.raise_event("stop")  # cancelled inside both shields
    sim.complete(2, "inner")
    assert flags(sim.last_turn) == [("ActivityScheduled", "Outer", True)]
    sim.complete(by_name(sim, "Outer"), "outer")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == [
        "inner",
        "outer",
        "outside: Cancelled",
        "task cancelled",
    ]
    check_replay(nested, sim)


@perdure.orchestration
async def never_cancelled(ctx: OrchestrationContext, shielded: bool) -> list[Any]:
    async def work() -> list[Any]:
        out: list[Any] = []
        if shielded:
            async with ctx.shield():
                out.append(await ctx.schedule_activity("A"))
                await ctx.shield(ctx.schedule_timer(5))
        else:
            out.append(await ctx.schedule_activity("A"))
            await ctx.schedule_timer(5)
        out.append(await ctx.schedule_activity("B"))
        return out

    return [await durable_async(ctx, work()), await ctx.schedule_activity("C")]


def test_shield_in_a_task_never_cancelled_is_plain_code() -> None:
    runs = []
    for shielded in (True, False):
        sim = Twin(never_cancelled, shielded)
        sim.complete(2, "a")
        sim.advance(5)
        sim.complete(by_name(sim, "B"), "b")
        sim.complete(by_name(sim, "C"), "c")
        assert sim.result.output == [["a", "b"], "c"]
        check_replay(never_cancelled, sim)
        runs.append(sim.history[1:])
    with_shield, without = runs
    # The same history but for the flags of the work started inside.
    assert [e.type for e in with_shield] == [e.type for e in without]
    assert [
        getattr(e, "shielded", None) for e in with_shield if e.role == "scheduling"
    ] == [True, True, False, False]
    assert [
        getattr(e, "shielded", None) for e in without if e.role == "scheduling"
    ] == [False, False, False, False]
