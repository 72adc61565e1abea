"""The messages of a rewind turn (`Client.rewind`, DESIGN §9).

Reads storage (children's outcomes), so it lives outside the pure
`perdure._core._rewind`, which plans the rewind itself.
"""

from __future__ import annotations

import logging

from ._commit import child_answer
from ._core import _history as h
from ._core._rewind import pending_children, plan_rewind
from ._turn import Inbox
from .providers._base import OrchestrationItem, Provider

__all__ = ["rewind_inbox"]

_log = logging.getLogger("perdure.dispatcher")


async def rewind_inbox(
    provider: Provider,
    item: OrchestrationItem,
    inbox: Inbox,
    events: list[h.Event],
    now: float,
) -> Inbox:
    """The messages of a rewind turn: *inbox* and the children's answers.

    The failure cancelled the children still running, and a child that
    ended while the instance had failed had its answer dropped; so each
    child the rewound history still waits for is read here (keeping the
    driver pure), and a finished one's answer is delivered now, in
    occurrence order with the rest. A running child answers later.
    """
    record = item.instance
    iid, exe = record.instance_id, record.execution_id
    plan = plan_rewind(events)
    assert plan is not None
    _log.info(
        "instance %s rewound: its failure (event %d) is voided and the code "
        "deployed now goes on from before it",
        iid,
        plan.failed,
    )
    answers: Inbox = []
    for event_id, child_id in pending_children(events, plan.voided):
        child = await provider.get_instance(child_id)
        answer = child_answer(iid, exe, event_id, child_id, child)
        if answer is not None:
            answers.append((answer, child.updated_at if child else None))
    merged = answers + inbox
    merged.sort(key=lambda pair: now if pair[1] is None else pair[1])
    return merged
