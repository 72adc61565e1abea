"""Rewound failures (``Client.rewind``) in the scope tree of ``perdure history``."""

from __future__ import annotations

from typing import Any

import perdure
from perdure import OrchestrationContext
from perdure._tree import render_history
from perdure.testing import Simulator


def program(bug: bool) -> Any:
    @perdure.orchestration(name="P")
    async def code(ctx: OrchestrationContext) -> Any:
        a = await ctx.schedule_activity("A")
        block = ctx.durable_async(_slow(ctx))
        wait = ctx.schedule_wait("go")
        if bug:
            raise KeyError(a)
        return [await block, await wait]

    return code


async def _slow(ctx: OrchestrationContext) -> Any:
    await ctx.schedule_timer(60)
    return await ctx.schedule_activity("B")


def test_the_voided_failure_shows_where_it_happened_and_its_cascade_does_not() -> None:
    sim = Simulator(program(bug=True))
    sim.complete(2, "a")
    assert render_history(sim.history) == (
        "orchestration P 1.0.0\n"
        "scope 0  ✗ failed\n"
        '├── #2 activity A()  ✓ → "a" (#3)\n'
        "├── task 0.1  ✗ cancelled: orchestration failed\n"
        "│   └── #4 timer 60 s  ✗ cancelled: orchestration failed (#6)\n"
        "└── #5 wait for event 'go'  ✗ cancelled: orchestration failed (#7)\n"
        "#8 ✗ failed: KeyError: 'a'\n"
    )
    sim.rewind(program(bug=False))
    assert render_history(sim.history) == (
        "orchestration P 1.0.0\n"
        "scope 0  … running\n"
        '├── #2 activity A()  ✓ → "a" (#3)\n'
        "├── task 0.1  … running\n"
        "│   └── #4 timer 60 s  … pending\n"
        "├── #5 wait for event 'go'  … pending\n"
        "└── #8 failed: KeyError: 'a'  ↺ rewound (#9)\n"
        "… running\n"
    )
    sim.advance(60)
    sim.complete(sim.pending("activity")[0].event_id, "b")
    sim.raise_event("go", 1)
    text = render_history(sim.history, ascii=True)
    assert "`-- #8 failed: KeyError: 'a'  <- rewound (#9)" in text.splitlines()
    assert text.endswith('#14 OK completed -> ["b", 1]\n')
    assert "cancelled" not in text
