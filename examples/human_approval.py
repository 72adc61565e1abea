"""Human approval: wait for an external event, with a timeout.

The orchestration asks a person for approval, then races two durable
futures with ``ctx.select2``: the ``approval`` event (raised from outside
with ``client.raise_event``) and a durable timer. Whichever completes first
in the history wins; the other is cancelled (the timer is dropped, or the
event wait is withdrawn without consuming anything). Timers are durable:
a runtime restarted after a crash still fires the timer at the right time.

Two instances show both paths: one is approved, the other times out and
is escalated.

Run it: ``python examples/human_approval.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

APPROVED = "expense-approved"
TIMED_OUT = "expense-timed-out"


@perdure.activity(name="RequestApproval")
async def request_approval(ctx: ActivityContext, request: dict[str, Any]) -> None:
    """Would send an e-mail with approve/reject links."""


@perdure.activity(name="Escalate")
async def escalate(ctx: ActivityContext, request: dict[str, Any]) -> str:
    """Would page the approver's manager."""
    return f"escalated {request['id']} to the manager"


@perdure.orchestration(name="ExpenseApproval")
async def expense_approval(ctx: OrchestrationContext, request: dict[str, Any]) -> str:
    """Ask for approval; give up and escalate after ``request['timeout']`` s."""
    await ctx.schedule_activity(request_approval, request)
    ctx.set_custom_status("waiting for approval")
    decision = ctx.schedule_wait("approval")
    deadline = ctx.schedule_timer(request["timeout"])
    winner, value = await ctx.select2(decision, deadline)
    if winner == 1:  # the timer fired first; the event wait was cancelled
        return await ctx.schedule_activity(escalate, request)
    verdict = "approved" if value["approved"] else "rejected"
    return f"{request['id']} {verdict} by {value['by']}"


async def run(db_url: str, **options: Any) -> dict[str, str]:
    """Run one instance per path on *db_url*; return their outputs.

    *options* are passed to `perdure.Runtime`.
    """
    async with perdure.Runtime(
        db_url,
        orchestrations=[expense_approval],
        activities=[request_approval, escalate],
        **options,
    ) as rt:
        client = rt.client
        # An hour to decide: the approver answers long before that.
        await client.start_orchestration(
            APPROVED, expense_approval, {"id": "exp-1", "timeout": 3600}
        )
        # Events are buffered, so raising one before the orchestration
        # reaches its wait is fine: the wait will receive it.
        await client.raise_event(
            APPROVED, "approval", {"approved": True, "by": "alice"}
        )
        # Nobody answers this one within its (short) deadline.
        await client.start_orchestration(
            TIMED_OUT, expense_approval, {"id": "exp-2", "timeout": 0.3}
        )
        outputs = {}
        for key, instance in (("approved", APPROVED), ("timed_out", TIMED_OUT)):
            state = await client.wait_for_orchestration(instance, timeout=30)
            if state.status != "Completed":
                raise RuntimeError(f"{instance} ended {state.status}: {state.error}")
            outputs[key] = state.output
    return outputs


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outputs = asyncio.run(run(f"sqlite:///{tmp}/approval.db"))
    for path, output in outputs.items():
        print(f"{path}: {output}")


if __name__ == "__main__":
    main()
