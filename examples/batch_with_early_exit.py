"""A batch with a deadline, skips and an early exit (proposal Example 4).

The ``durable_async`` block is ordinary Python control flow over durable
calls: a ``for`` loop, ``continue`` for skipped items, ``try``/``except`` for
failed items, an early ``raise`` when too many items failed, and a durable
throttle timer between items. It races a deadline timer.

Three instances show the three endings:
* completed - one failure is tolerated, low-priority items are skipped;
* aborted - a second failure ends the block early; its exception is the
  select's result, so the orchestration fails and the deadline is cancelled;
* timed out - a slow item is still running at the deadline; that call is
  cancelled while the items already processed stay processed.

Run it: ``python examples/batch_with_early_exit.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext, durable_async


class BatchAborted(Exception):
    """Too many items failed."""


@perdure.activity(name="PriorityProcess")
async def priority_process(ctx: ActivityContext, item_id: str) -> str:
    return f"{item_id}:express"


@perdure.activity(name="StandardProcess")
async def standard_process(ctx: ActivityContext, item_id: str) -> str:
    if item_id.startswith("bad"):
        raise ValueError(f"cannot process {item_id}")
    if item_id.startswith("slow"):  # hangs until cancelled
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.cancelled, timeout=30)
    return f"{item_id}:done"


async def process_batch(
    ctx: OrchestrationContext, config: dict[str, Any]
) -> dict[str, int]:
    results, failed = [], 0
    for i, item in enumerate(config["items"]):
        ctx.trace_info(f"processing {i + 1}/{len(config['items'])}")
        if item["priority"] == "low" and config["skip_low_priority"]:
            continue
        activity = priority_process if item["priority"] == "high" else standard_process
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


@perdure.orchestration(name="BatchWithTimeout")
async def batch_with_timeout(
    ctx: OrchestrationContext, config: dict[str, Any]
) -> dict[str, int]:
    """Process the batch before ``config['timeout']`` seconds pass."""
    deadline = ctx.schedule_timer(config["timeout"])
    work = durable_async(ctx, process_batch(ctx, config))
    winner, output = await ctx.select2(deadline, work)  # raises BatchAborted
    if winner == 0:
        raise TimeoutError("batch processing timed out")
    return output


def batch(timeout: float, *items: str) -> dict[str, Any]:
    """A batch config; items are ``"id"`` or ``"id:priority"`` (default normal)."""
    parsed = [item.partition(":") for item in items]
    return {
        "items": [{"id": i, "priority": p or "normal"} for i, _, p in parsed],
        "timeout": timeout,
        "skip_low_priority": True,
        "max_failures": 1,
        "throttle": 0.02,
    }


BATCHES = {
    "batch-completed": batch(30, "i1:high", "i2", "i3:low", "bad-4", "i5"),
    "batch-aborted": batch(30, "bad-1", "bad-2", "i3:high"),
    "batch-timed-out": batch(0.5, "i1", "slow-2", "i3"),
}


async def run(db_url: str, **options: Any) -> dict[str, Any]:
    """Run every batch in BATCHES on *db_url*; return output or error per batch.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url,
        orchestrations=[batch_with_timeout],
        activities=[priority_process, standard_process],
        **options,
    ) as rt:
        for instance, config in BATCHES.items():
            await rt.client.start_orchestration(instance, batch_with_timeout, config)
        outcomes = {}
        for instance in BATCHES:
            state = await rt.client.wait_for_orchestration(instance, timeout=30)
            error = state.error
            outcomes[instance] = (
                state.output if error is None else f"{error.type}: {error.message}"
            )
    return outcomes


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for instance, outcome in asyncio.run(run(f"sqlite:///{tmp}/batch.db")).items():
            print(f"{instance}: {outcome}")


if __name__ == "__main__":
    main()
