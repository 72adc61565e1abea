"""The orchestrations (and activities) the golden histories were recorded from.

FROZEN FIXTURES. Every function here produced one or more
``tests/histories/*.json`` files; those files only replay if the code that
made them stays exactly as it was. Never edit, rename or delete a program
(or an activity or helper one uses) once a history has been recorded from
it, not even to fix a typo or a lint warning that changes behaviour. To
cover something new, add a new function (with a new registered name) and a
new scenario in ``record.py``.

The programs are written like user code: they only use the public API
(``perdure``, `OrchestrationContext`, `durable_async`). Activities are given
by name when the history comes from `perdure.testing.Simulator` (which fakes
them) and as decorated functions when it comes from a real `perdure.Runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async

# --------------------------------------------------------------- basics


@perdure.orchestration
async def single_activity(ctx: OrchestrationContext, name: str) -> str:
    """One activity; its result is the output."""
    return str(await ctx.schedule_activity("Greet", name))


@perdure.orchestration
async def activity_chain(ctx: OrchestrationContext, value: str) -> str:
    """Three activities one after another, each fed the previous result."""
    a = await ctx.schedule_activity("Step1", value)
    b = await ctx.schedule_activity("Step2", a)
    return str(await ctx.schedule_activity("Step3", b))


@perdure.orchestration
async def activity_failure_caught(ctx: OrchestrationContext, order: str) -> str:
    """An activity fails; the code catches ActivityFailed and compensates."""
    try:
        return str(await ctx.schedule_activity("Charge", order))
    except perdure.ActivityFailed as exc:
        note = await ctx.schedule_activity("Notify", f"{order}: {exc.message}")
        return f"not charged ({exc.type}): {note}"


@perdure.orchestration
async def activity_failure_uncaught(ctx: OrchestrationContext, order: str) -> str:
    """An activity fails and nothing catches it: the instance ends Failed."""
    await ctx.schedule_activity("Reserve", order)
    return str(await ctx.schedule_activity("Charge", order))


@perdure.orchestration
async def timer(ctx: OrchestrationContext, delay: float) -> dict[str, Any]:
    """A durable timer; utc_now before and after it is in the output."""
    before = ctx.utc_now().isoformat()
    await ctx.schedule_timer(delay)
    return {"before": before, "after": ctx.utc_now().isoformat()}


@perdure.orchestration
async def custom_status(ctx: OrchestrationContext, steps: int) -> int:
    """Custom status set before, between and after activities."""
    ctx.set_custom_status({"step": 0, "of": steps})
    total = 0
    for i in range(steps):
        total += await ctx.schedule_activity("Work", i)
        ctx.set_custom_status({"step": i + 1, "of": steps})
    ctx.set_custom_status("done")
    return total


@perdure.orchestration
async def deterministic_values(ctx: OrchestrationContext) -> dict[str, Any]:
    """new_guid, random and utc_now, before and after an activity."""
    first = {
        "guid": ctx.new_guid(),
        "random": ctx.random().randint(0, 1_000_000),
        "now": ctx.utc_now().isoformat(),
    }
    echoed = await ctx.schedule_activity("Echo", first["guid"])
    rng = ctx.random()
    second = {
        "guid": ctx.new_guid(),
        "random": [rng.random(), rng.choice("abcdef")],
        "now": ctx.utc_now().isoformat(),
    }
    return {"first": first, "echoed": echoed, "second": second}


# --------------------------------------------------------------- events


@perdure.orchestration
async def event_buffered_before_wait(ctx: OrchestrationContext) -> dict[str, Any]:
    """The event arrives while an activity runs, before the wait exists."""
    prepared = await ctx.schedule_activity("Prepare")
    approval = await ctx.schedule_wait("Approval")
    return {"prepared": prepared, "approval": approval}


@perdure.orchestration
async def event_fifo(ctx: OrchestrationContext) -> list[Any]:
    """Two events of one name are taken by two waits in arrival order."""
    await ctx.schedule_timer(10)
    first = await ctx.schedule_wait("Item")
    second = await ctx.schedule_wait("Item")
    return [first, second]


@perdure.orchestration
async def event_wait_then_raise(ctx: OrchestrationContext, name: str) -> Any:
    """The wait exists first; the event arrives later."""
    data = await ctx.schedule_wait(name)
    return {"got": data, "at": ctx.utc_now().isoformat()}


# ------------------------------------------------- sub-orchestrations


@perdure.orchestration
async def sub_orchestration_completed(ctx: OrchestrationContext, n: int) -> list[Any]:
    """Two children: default id and explicit id, both complete."""
    first = ctx.schedule_sub_orchestration("Child", {"n": n})
    second = ctx.schedule_sub_orchestration(
        "Child", {"n": n + 1}, instance_id=f"{ctx.instance_id}-explicit"
    )
    return [await first, await second]


@perdure.orchestration
async def sub_orchestration_failed(ctx: OrchestrationContext) -> str:
    """A child fails; the parent catches SubOrchestrationFailed."""
    try:
        await ctx.schedule_sub_orchestration("Child", "boom")
    except perdure.SubOrchestrationFailed as exc:
        return f"child {exc.instance_id} failed: {exc.error.type}: {exc.error.message}"
    return "unexpected"


@perdure.orchestration
async def detached_start(ctx: OrchestrationContext, count: int) -> str:
    """Fire-and-forget starts (OrchestrationChained), then an activity."""
    for i in range(count):
        ctx.start_orchestration("Report", f"{ctx.instance_id}-report-{i}", {"i": i})
    return str(await ctx.schedule_activity("Done", count))


# --------------------------------------------------------- combinators


@perdure.orchestration
async def join_activities(ctx: OrchestrationContext, items: list[str]) -> list[Any]:
    """Fan out one activity per item, join them all."""
    futures = [ctx.schedule_activity("Process", item) for item in items]
    return await ctx.join(futures)


@perdure.orchestration
async def join_fail_fast(ctx: OrchestrationContext, items: list[str]) -> str:
    """One join member fails: the unfinished rest (incl. a timer) is cancelled."""
    futures = [ctx.schedule_activity("Process", item) for item in items]
    futures.append(ctx.schedule_timer(3600))
    try:
        await ctx.join(*futures)
    except perdure.ActivityFailed as exc:
        return f"failed fast: {exc.message}"
    return "all done"


@perdure.orchestration
async def join_return_exceptions(
    ctx: OrchestrationContext, items: list[str]
) -> list[Any]:
    """Failures are returned in the list; nothing is cancelled."""
    futures = [ctx.schedule_activity("Process", item) for item in items]
    results = await ctx.join(futures, return_exceptions=True)
    return [
        f"error: {r.message}" if isinstance(r, perdure.ActivityFailed) else r
        for r in results
    ]


@perdure.orchestration
async def select_activity_vs_timer(ctx: OrchestrationContext, delay: float) -> str:
    """select2(activity, timer): whichever completes first in history wins."""
    winner, value = await ctx.select2(
        ctx.schedule_activity("Fetch", "data"), ctx.schedule_timer(delay)
    )
    return f"activity:{value}" if winner == 0 else "timeout"


@perdure.orchestration
async def select_same_turn(ctx: OrchestrationContext) -> list[Any]:
    """Three activities complete in one turn: the first delivered wins."""
    index, value = await ctx.select(
        ctx.schedule_activity("A"),
        ctx.schedule_activity("B"),
        ctx.schedule_activity("C"),
    )
    return [index, value]


# ------------------------------------------------------ race losers


@perdure.orchestration
async def loser_activity(ctx: OrchestrationContext) -> list[Any]:
    """Two activities race; the slower one is cancelled."""
    return list(
        await ctx.select2(ctx.schedule_activity("Slow"), ctx.schedule_activity("Fast"))
    )


@perdure.orchestration
async def loser_timer(ctx: OrchestrationContext) -> list[Any]:
    """An activity beats a timer; the timer is cancelled."""
    return list(
        await ctx.select2(ctx.schedule_timer(60), ctx.schedule_activity("Fast"))
    )


@perdure.orchestration
async def loser_event_wait(ctx: OrchestrationContext) -> dict[str, Any]:
    """A wait loses to an activity; it consumed nothing, so a later wait of
    the same name gets the event raised afterwards."""
    winner, value = await ctx.select2(
        ctx.schedule_wait("Signal"), ctx.schedule_activity("Fast")
    )
    later = await ctx.schedule_wait("Signal")
    return {"winner": winner, "value": value, "later": later}


@perdure.orchestration
async def loser_sub_orchestration(ctx: OrchestrationContext) -> str:
    """A child loses to a timer: SubOrchestrationCancelRequested."""
    winner, _ = await ctx.select2(
        ctx.schedule_sub_orchestration("SlowChild", "x"), ctx.schedule_timer(5)
    )
    return "child" if winner == 0 else "timeout"


async def _deep_block(ctx: OrchestrationContext, trail: list[str]) -> str:
    try:
        await ctx.schedule_activity("Inner1")
        await ctx.schedule_timer(30)
        return str(await ctx.schedule_wait("Never"))
    finally:
        trail.append("deep finally")


async def _nested_block(ctx: OrchestrationContext, trail: list[str]) -> str:
    try:
        started = await ctx.schedule_activity("Outer1")
        deep = durable_async(ctx, _deep_block(ctx, trail))
        side = ctx.schedule_sub_orchestration("Side", started)
        waited = ctx.schedule_timer(120)
        await ctx.join(deep, side, waited)
        return "block finished"
    except perdure.Cancelled:
        trail.append("nested cancelled")
        raise


@perdure.orchestration
async def loser_nested_block(ctx: OrchestrationContext) -> dict[str, Any]:
    """A block with a nested block, a child, timers, a wait loses to an activity.

    Everything unfinished beneath it is cancelled depth-first in creation
    order; the finished Outer1/Inner1 are not; finally blocks run.
    """
    trail: list[str] = []
    block = durable_async(ctx, _nested_block(ctx, trail))
    fast = ctx.schedule_activity("Fast")
    winner, value = await ctx.select2(block, fast)
    trail.append("after race")
    return {"winner": winner, "value": value, "trail": trail}


async def _two_steps(ctx: OrchestrationContext, value: str) -> str:
    a = await ctx.schedule_activity("StepA", value)
    return str(await ctx.schedule_activity("StepB", a))


@perdure.orchestration
async def block_vs_timer(ctx: OrchestrationContext, delay: float) -> str:
    """durable_async block raced against a timer."""
    block = durable_async(ctx, _two_steps(ctx, "in"))
    winner, value = await ctx.select2(block, ctx.schedule_timer(delay))
    return f"block:{value}" if winner == 0 else "timed out"


async def _guarded(ctx: OrchestrationContext, trail: list[str]) -> str:
    try:
        return str(await ctx.schedule_activity("Long"))
    except perdure.Cancelled:
        trail.append("caught Cancelled")
        raise
    finally:
        trail.append("finally ran")


@perdure.orchestration
async def explicit_cancel(ctx: OrchestrationContext) -> dict[str, Any]:
    """DurableFuture.cancel() on a block and on a timer; then more work."""
    trail: list[str] = []
    block = durable_async(ctx, _guarded(ctx, trail))
    tick = ctx.schedule_timer(100)
    first = await ctx.schedule_activity("First")
    block.cancel("not needed")
    tick.cancel()
    after = await ctx.schedule_activity("After", first)
    return {
        "after": after,
        "block_cancelled": block.cancelled(),
        "timer_cancelled": tick.cancelled(),
        "trail": trail,
    }


@perdure.orchestration
async def late_result_ignored(ctx: OrchestrationContext) -> list[Any]:
    """A timer beats an activity; the activity's late result is recorded and
    ignored while the orchestration waits for the next activity."""
    winner, _ = await ctx.select2(ctx.schedule_activity("Slow"), ctx.schedule_timer(1))
    after = await ctx.schedule_activity("After")
    return [winner, after]


async def _cancel_target_inner(ctx: OrchestrationContext) -> None:
    await ctx.join(ctx.schedule_wait("Go"), ctx.schedule_activity("InnerWork"))


async def _cancel_target_outer(ctx: OrchestrationContext) -> None:
    await ctx.schedule_activity("OuterDone")
    inner = durable_async(ctx, _cancel_target_inner(ctx))
    child = ctx.schedule_sub_orchestration("Child", 1)
    await ctx.join(inner, child, ctx.schedule_timer(600))


@perdure.orchestration
async def cancel_instance_nested(ctx: OrchestrationContext) -> str:
    """Client cancel_instance while nested blocks have pending work of every kind."""
    outer = durable_async(ctx, _cancel_target_outer(ctx))
    await ctx.join(outer, ctx.schedule_activity("RootWork"))
    return "not cancelled"


# ------------------------------------------ DESIGN examples (copies)
# Orchestration code of examples/*.py, copied so the examples may evolve;
# activity names are the examples'.


async def _ex1_full_validation(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    customer = await ctx.schedule_activity("ValidateCustomer", order["customer"])
    credit = await ctx.schedule_activity("CreditCheck", customer)
    inventory = await ctx.schedule_activity("ReserveInventory", order["sku"])
    return f"{credit}:{inventory}"


@perdure.orchestration
async def ex1_racing_activity_vs_pipeline(
    ctx: OrchestrationContext, order: dict[str, Any]
) -> str:
    """examples/racing_activity_vs_pipeline.py (proposal Example 1)."""
    quick = ctx.schedule_activity("QuickCheck", order["id"])
    full = durable_async(ctx, _ex1_full_validation(ctx, order))
    winner, output = await ctx.select2(quick, full)
    return f"quick:{output}" if winner == 0 else f"validated:{output}"


async def _ex2_provision(
    ctx: OrchestrationContext, config: dict[str, Any], created: dict[str, str]
) -> str:
    vm_id = await ctx.schedule_activity("CreateVM", config)
    created["vm"] = vm_id
    while await ctx.schedule_activity("CheckVMStatus", vm_id) != "ready":
        await ctx.schedule_timer(config["poll_seconds"])
    for package in ("nginx", "postgres", "redis"):
        await ctx.schedule_activity("InstallPackage", f"{vm_id}:{package}")
    return str(vm_id)


@perdure.orchestration
async def ex2_timeout_with_polling(
    ctx: OrchestrationContext, config: dict[str, Any]
) -> str:
    """examples/timeout_with_polling.py (proposal Example 2)."""
    timeout = ctx.schedule_timer(config["timeout"])
    created: dict[str, str] = {}
    work = durable_async(ctx, _ex2_provision(ctx, config, created))
    winner, vm_id = await ctx.select2(timeout, work)
    if winner == 1:
        return f"provisioned {vm_id}"
    if "vm" not in created:
        return "provisioning timed out"
    await ctx.schedule_activity("DeleteVM", created["vm"])
    return "provisioning timed out; VM deleted"


async def _ex3_path_a(ctx: OrchestrationContext, value: str) -> str:
    x = await ctx.schedule_activity("A1", value)
    y = await ctx.schedule_activity("A2", x)
    return "path_a:" + str(await ctx.schedule_activity("A3", y))


async def _ex3_path_b(ctx: OrchestrationContext, value: str) -> str:
    x = await ctx.schedule_activity("B1", value)
    await ctx.schedule_timer(5)
    return "path_b:" + str(await ctx.schedule_activity("B2", x))


@perdure.orchestration
async def ex3_racing_two_pipelines(ctx: OrchestrationContext, value: str) -> str:
    """examples/racing_two_pipelines.py (proposal Example 3)."""
    winner, output = await ctx.select2(
        durable_async(ctx, _ex3_path_a(ctx, value)),
        durable_async(ctx, _ex3_path_b(ctx, value)),
    )
    ctx.trace_info(f"path {'AB'[winner]} won")
    return str(output)


class BatchAborted(Exception):
    """Too many items failed (examples/batch_with_early_exit.py)."""


async def _ex4_process_batch(
    ctx: OrchestrationContext, config: dict[str, Any]
) -> dict[str, int]:
    results, failed = [], 0
    for i, item in enumerate(config["items"]):
        ctx.trace_info(f"processing {i + 1}/{len(config['items'])}")
        if item["priority"] == "low" and config["skip_low_priority"]:
            continue
        activity = (
            "PriorityProcess" if item["priority"] == "high" else "StandardProcess"
        )
        try:
            results.append(await ctx.schedule_activity(activity, item["id"]))
        except perdure.ActivityFailed as error:
            ctx.trace_warn(f"item {item['id']} failed: {error.message}")
            failed += 1
            if failed > config["max_failures"]:
                raise BatchAborted(f"too many failures: {failed}") from error
        if config["throttle"] > 0:
            await ctx.schedule_timer(config["throttle"])
    return {"processed": len(results), "failed": failed}


@perdure.orchestration
async def ex4_batch_with_early_exit(
    ctx: OrchestrationContext, config: dict[str, Any]
) -> dict[str, int]:
    """examples/batch_with_early_exit.py (proposal Example 4)."""
    deadline = ctx.schedule_timer(config["timeout"])
    work = durable_async(ctx, _ex4_process_batch(ctx, config))
    won = await ctx.select2(deadline, work)
    if won[0] == 0:
        raise TimeoutError("batch processing timed out")
    return dict(won[1])


async def _ex5_path_a(ctx: OrchestrationContext, setup_result: str) -> str:
    x = await ctx.schedule_activity("InnerA1", setup_result)
    return str(await ctx.schedule_activity("InnerA2", x))


async def _ex5_outer_block(ctx: OrchestrationContext, job: str) -> str:
    setup_result = await ctx.schedule_activity("Setup", job)
    inner_a = durable_async(ctx, _ex5_path_a(ctx, setup_result))
    inner_b_call = ctx.schedule_activity("InnerB", setup_result)
    _, inner_result = await ctx.select2(inner_a, inner_b_call)
    return str(await ctx.schedule_activity("Finalize", inner_result))


@perdure.orchestration
async def ex5_nested_durable_async(
    ctx: OrchestrationContext, job: dict[str, Any]
) -> str:
    """examples/nested_durable_async.py (proposal Example 5, DESIGN §4.6)."""
    outer = durable_async(ctx, _ex5_outer_block(ctx, job["name"]))
    timeout = ctx.schedule_timer(job["timeout"])
    winner, output = await ctx.select2(timeout, outer)
    return "timed out" if winner == 0 else str(output)


async def _ex6_validate_order(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    customer = await ctx.schedule_activity("ValidateCustomer", order["customer"])
    inventory = await ctx.schedule_activity("CheckInventory", order["sku"])
    return f"{customer}:{inventory}"


async def _ex6_process_payment(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    return str(await ctx.schedule_activity("ChargeCard", order["payment"]))


async def _ex6_process_order(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    validation = await _ex6_validate_order(ctx, order)
    payment = await _ex6_process_payment(ctx, order)
    return f"{validation}|{payment}"


@perdure.orchestration
async def ex6_helper_functions(ctx: OrchestrationContext, order: dict[str, Any]) -> str:
    """examples/helper_functions.py (proposal Example 6)."""
    timeout = ctx.schedule_timer(order["timeout"])
    processing = durable_async(ctx, _ex6_process_order(ctx, order))
    winner, output = await ctx.select2(timeout, processing)
    if winner == 0:
        raise TimeoutError("order processing timed out")
    return str(output)


async def _ex7_first_two_steps(ctx: OrchestrationContext, value: str) -> str:
    a = await ctx.schedule_activity("Step1", value)
    return str(await ctx.schedule_activity("Step2", a))


@perdure.orchestration
async def ex7_direct_await(ctx: OrchestrationContext, value: str) -> str:
    """examples/direct_await.py: a block awaited directly, then step 3."""
    result = await durable_async(ctx, _ex7_first_two_steps(ctx, value))
    return str(await ctx.schedule_activity("Step3", result))


# ------------------------------------- recorded from a real Runtime


@dataclass
class Parcel:
    """An activity payload (encoded as JSON, decoded by type hints)."""

    sku: str
    weight: float


@dataclass
class Label:
    """An activity result decoded into a dataclass."""

    code: str
    price: float
    carrier: str


@perdure.activity(name="RatePackage")
def rate_package(ctx: ActivityContext, parcel: Parcel) -> Label:
    """Sync activity (runs in a thread); dataclass in and out."""
    return Label(
        code=f"L-{parcel.sku}", price=round(parcel.weight * 2.5, 2), carrier=""
    )


@perdure.activity(name="PickCarrier")
async def pick_carrier(ctx: ActivityContext, label: Label) -> Label:
    """Async activity; dataclass in and out."""
    carrier = "heavy-freight" if label.price > 10 else "post"
    return Label(code=label.code, price=label.price, carrier=carrier)


@perdure.orchestration
async def dataclass_payloads(ctx: OrchestrationContext, parcel: Parcel) -> Label:
    """A sync then an async activity exchanging dataclasses."""
    label: Label = await ctx.schedule_activity(rate_package, parcel)
    assert isinstance(label, Label)
    carried: Label = await ctx.schedule_activity(pick_carrier, label)
    return carried


#: Attempts seen per key by `flaky` (a test fixture's side channel).
FLAKY_ATTEMPTS: dict[str, int] = {}


@perdure.activity(name="Flaky")
async def flaky(ctx: ActivityContext, key: str) -> dict[str, Any]:
    """Fails on its first two attempts, succeeds on the third."""
    FLAKY_ATTEMPTS[key] = FLAKY_ATTEMPTS.get(key, 0) + 1
    if ctx.attempt < 3:
        raise ConnectionError(f"attempt {ctx.attempt} of {key} failed")
    return {"key": key, "attempt": ctx.attempt}


@perdure.activity(name="AlwaysFails")
async def always_fails(ctx: ActivityContext, key: str) -> None:
    """Fails on every attempt."""
    raise ValueError(f"{key} failed on attempt {ctx.attempt}")


@perdure.orchestration
async def retries(ctx: OrchestrationContext, key: str) -> dict[str, Any]:
    """Retried activities: one succeeds on attempt 3, one exhausts its policy."""
    policy = perdure.RetryPolicy(max_attempts=3, initial_interval=0.05, backoff=1.0)
    ok = await ctx.schedule_activity(flaky, key, retry=policy)
    try:
        await ctx.schedule_activity(always_fails, key, retry=policy)
        gave_up = ""
    except perdure.ActivityFailed as exc:
        gave_up = exc.message
    return {"ok": ok, "gave_up": gave_up}


@perdure.activity(name="Tick")
async def tick_activity(ctx: ActivityContext, n: int) -> int:
    """Returns n + 1."""
    return n + 1


@perdure.orchestration
async def continue_as_new_carry(
    ctx: OrchestrationContext, state: dict[str, Any]
) -> Any:
    """Execution 1 takes "Go" and continues as new while "Extra" is still
    buffered; execution 2 gets the carried "Extra"."""
    n = await ctx.schedule_activity(tick_activity, state["n"])
    if state["round"] == 1:
        go = await ctx.schedule_wait("Go")
        ctx.continue_as_new({"round": 2, "n": n, "go": go})
    extra = await ctx.schedule_wait("Extra")
    return {"n": n, "go": state["go"], "extra": extra}


@perdure.activity(name="Double")
async def double(ctx: ActivityContext, n: int) -> int:
    """Returns 2 * n."""
    return 2 * n


@perdure.orchestration
async def rt_child(ctx: OrchestrationContext, n: int) -> int:
    """A child that doubles n, and fails for negative n."""
    if n < 0:
        raise ValueError(f"negative input {n}")
    return int(await ctx.schedule_activity(double, n))


@perdure.orchestration
async def rt_parent(ctx: OrchestrationContext, inputs: list[int]) -> list[Any]:
    """Children joined with return_exceptions; a failed child becomes a string."""
    children = [ctx.schedule_sub_orchestration(rt_child, n) for n in inputs]
    results = await ctx.join(children, return_exceptions=True)
    return [
        f"failed: {r.error.message}"
        if isinstance(r, perdure.SubOrchestrationFailed)
        else r
        for r in results
    ]


@perdure.activity(name="Hang")
async def hang(ctx: ActivityContext, what: str) -> str:
    """Runs until cancelled (bounded, so a test never hangs)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctx.cancelled, timeout=30)
    return f"{what} stopped"


@perdure.orchestration
async def rt_waiting_child(ctx: OrchestrationContext) -> str:
    """A child that waits for an event nobody raises."""
    ctx.set_custom_status("waiting")
    return str(await ctx.schedule_wait("Never"))


async def _rt_cancel_block(ctx: OrchestrationContext) -> None:
    child = ctx.schedule_sub_orchestration(rt_waiting_child)
    await ctx.join(child, ctx.schedule_activity(hang, "inner"), ctx.schedule_timer(600))


@perdure.orchestration
async def rt_cancel_target(ctx: OrchestrationContext) -> str:
    """Nested pending work (child, hanging activity, timer) until cancelled."""
    block = durable_async(ctx, _rt_cancel_block(ctx))
    ctx.set_custom_status("started")
    await ctx.join(block, ctx.schedule_wait("Never"))
    return "not cancelled"


# --------------------------------------------------------------- patches


@perdure.orchestration
async def patched_greeting(ctx: OrchestrationContext, name: str) -> dict[str, Any]:
    """ctx.patched picks the branch; asked again later: same answer, one marker."""
    if ctx.patched("formal-greeting"):
        greeting = await ctx.schedule_activity("GreetFormally", name)
    else:
        greeting = await ctx.schedule_activity("Greet", name)
    farewell = await ctx.schedule_activity("Farewell", name)
    again = ctx.patched("formal-greeting")
    return {"greeting": greeting, "farewell": farewell, "again": again}


async def _patched_step(ctx: OrchestrationContext, tag: str, delay: float) -> Any:
    await ctx.schedule_timer(delay)
    if ctx.patched("fast-path"):
        return ["fast", await ctx.schedule_activity("Fast", tag)]
    return ["slow", await ctx.schedule_activity("Slow", tag)]


@perdure.orchestration
async def patched_in_blocks(ctx: OrchestrationContext) -> list[Any]:
    """Two durable_async blocks and the body ask one patch id (one marker, in
    the block that asked first); a second id is first asked as it ends."""
    first = durable_async(ctx, _patched_step(ctx, "a", 1))
    second = durable_async(ctx, _patched_step(ctx, "b", 2))
    both = await ctx.join(first, second)
    return [*both, ctx.patched("fast-path"), ctx.patched("audit-v2")]


async def _patched_cleanup(ctx: OrchestrationContext, trail: list[str]) -> str:
    try:
        return str(await ctx.schedule_wait("Never"))
    finally:
        trail.append("cleanup-v2" if ctx.patched("cleanup-v2") else "cleanup")


@perdure.orchestration
async def patched_in_loser(ctx: OrchestrationContext) -> dict[str, Any]:
    """A select loser's finally asks ctx.patched while being cancelled."""
    trail: list[str] = []
    won = await ctx.select2(
        ctx.schedule_timer(5), durable_async(ctx, _patched_cleanup(ctx, trail))
    )
    return {"winner": won[0], "trail": trail}


@perdure.orchestration
async def patched_rounds(ctx: OrchestrationContext, state: dict[str, Any]) -> Any:
    """Each execution of a continue-as-new decides afresh (a marker in each)."""
    n = state["n"]
    if ctx.patched("tick-v2"):
        n = await ctx.schedule_activity(tick_activity, n)
    if state["round"] == 1:
        ctx.continue_as_new({"round": 2, "n": n})
    return {"n": n, "patched": ctx.patched("tick-v2")}


# --------------------------------------------------------------- rewind


@perdure.orchestration(name="RewindOrder")
async def rewind_order_buggy(ctx: OrchestrationContext, order: str) -> dict[str, Any]:
    """Fails on a bug (KeyError) when the approval has no total, with a
    charge, a reminder timer and a courier child open; rewind_order_fixed
    is its fix (Client.rewind)."""
    reserved = await ctx.schedule_activity("Reserve", order)
    retry = perdure.RetryPolicy(max_attempts=3)
    charge = ctx.schedule_activity("Charge", order, retry=retry)
    reminder = ctx.schedule_timer(3600)
    courier = ctx.schedule_sub_orchestration("Courier", order)
    approval = await ctx.schedule_wait("Approval")
    total = approval["total"]
    done = await ctx.select2(reminder, ctx.join(charge, courier))
    return {"reserved": reserved, "total": total, "done": done}


@perdure.orchestration(name="RewindOrder")
async def rewind_order_fixed(ctx: OrchestrationContext, order: str) -> dict[str, Any]:
    """rewind_order_buggy with the fix behind ctx.patched("default-total")."""
    reserved = await ctx.schedule_activity("Reserve", order)
    retry = perdure.RetryPolicy(max_attempts=3)
    charge = ctx.schedule_activity("Charge", order, retry=retry)
    reminder = ctx.schedule_timer(3600)
    courier = ctx.schedule_sub_orchestration("Courier", order)
    approval = await ctx.schedule_wait("Approval")
    if ctx.patched("default-total"):
        total = approval.get("total", 0)
    else:
        total = approval["total"]
    done = await ctx.select2(reminder, ctx.join(charge, courier))
    return {"reserved": reserved, "total": total, "done": done}


from _programs_structured import *  # noqa: E402,F403  (frozen like the above)
