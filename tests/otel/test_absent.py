"""perdure without OpenTelemetry, and the stored trace context's form."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from perdure import _messages as m
from perdure._core import _history as h
from perdure.providers._base import QueuedMessage

# Blocks every opentelemetry import, runs an orchestration end to end, then
# reports whether any opentelemetry module got imported.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "opentelemetry":
                raise ModuleNotFoundError(f"blocked: {name}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    import perdure
    from perdure import _telemetry

    @perdure.activity
    async def double(ctx, x: int) -> int:
        return 2 * x

    @perdure.orchestration
    async def simple(ctx, x: int) -> int:
        return await ctx.schedule_activity(double, x)

    async def main() -> None:
        async with perdure.Runtime(
            sys.argv[1], orchestrations=[simple], activities=[double]
        ) as rt:
            await rt.client.start_orchestration("i", simple, 4)
            state = await rt.client.wait_for_orchestration("i", 10)
            history = await rt.client.get_history("i")
        assert state.output == 8, state
        assert history[0].trace is None
        assert _telemetry.get() is None
        loaded = [n for n in sys.modules if n.startswith("opentelemetry")]
        print("loaded:", loaded)

    asyncio.run(main())
    """
)


def test_perdure_runs_without_opentelemetry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded: []"


def test_the_trace_field_is_omitted_when_none_and_round_trips() -> None:
    plain = h.OrchestrationStarted(event_id=1, timestamp=5.0, name="x", version="1")
    assert "trace" not in h.event_to_json(plain)
    carrier = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    traced = h.OrchestrationStarted(
        event_id=1, timestamp=5.0, name="x", version="1", trace=carrier
    )
    text = h.event_to_json(traced)
    assert '"trace":{"traceparent"' in text
    assert h.event_from_json(text) == traced
    assert "trace" not in h.OrchestrationStarted.match_keys


def test_start_messages_carry_the_trace_only_when_set() -> None:
    carrier = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    assert b"trace" not in m.Start("x").message().body.encode()
    for sent in (
        m.Start("x", trace=carrier),
        m.ContinueAsNew("x", None, 1, 2, trace=carrier),
    ):
        message = sent.message()
        queued = QueuedMessage(id=1, kind=message.kind, body=message.body)
        assert m.decode(queued) == sent
