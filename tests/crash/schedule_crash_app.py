"""What the schedule SIGKILL test's worker processes run.

``ScheduledSlot`` is the target of a schedule: it records its slot (the
part of its instance id after ``<schedule_id>:``) with an activity that
appends ``<slot> <pid>`` to the log file named in its input, and returns
the slot.
"""

from __future__ import annotations

import os
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext


def record(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{line} {os.getpid()}\n")


@perdure.activity(name="RecordSlot")
async def record_slot(ctx: ActivityContext, arg: dict[str, Any]) -> None:
    record(arg["log"], arg["slot"])


@perdure.orchestration(name="ScheduledSlot")
async def scheduled_slot(ctx: OrchestrationContext, log: str) -> str:
    slot = ctx.instance_id.split(":", 1)[1]
    await ctx.schedule_activity(record_slot, {"log": log, "slot": slot})
    return slot


ORCHESTRATIONS = [scheduled_slot]
ACTIVITIES = [record_slot]
