"""The dispatcher's wake-up heap of timer fire times stays small under load.

It used to be pruned only when a fetch came back empty, so a runtime never
idle (a steady stream of work) kept every timer it ever scheduled (the
issue 17 soak: RSS +0.4 MB/min).
"""

from __future__ import annotations

import perdure
from perdure._turn import TurnOutput
from perdure.providers import Message, Outbound, TurnCommit


def test_fire_times_in_the_past_are_dropped_as_new_ones_come() -> None:
    rt = perdure.Runtime("sqlite://:memory:")
    dispatcher = rt._dispatcher
    now = rt.provider.clock()
    for n in range(10_000):  # timers scheduled over a busy hour, all fired
        fire_at = now - 3600 + n * 0.36
        commit = TurnCommit(
            instance_id=f"i{n}",
            execution_id=1,
            history_start=0,
            events=[],
            consumed=[],
            lock_token="t",
            outbound=[
                Outbound(
                    instance_id=f"i{n}",
                    message=Message(kind="timer_fired", body="{}", visible_at=fire_at),
                )
            ],
        )
        dispatcher._after_commit(TurnOutput(commit, None), True)
    assert len(dispatcher._timers) <= 3  # only those within the last second
    later = now + 60
    commit = TurnCommit(
        instance_id="x",
        execution_id=1,
        history_start=0,
        events=[],
        consumed=[],
        lock_token="t",
        outbound=[
            Outbound(
                instance_id="x",
                message=Message(kind="timer_fired", body="{}", visible_at=later),
            )
        ],
    )
    dispatcher._after_commit(TurnOutput(commit, None), True)
    assert later in dispatcher._timers  # a future one stays: it must wake us
