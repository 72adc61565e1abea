"""Cost of the OpenTelemetry hooks: a perdure bench script in three modes.

Usage: python bench/otel.py [--script perdure_chain.py] [--repeat 3] [ARGS...]

Runs the script (default: chain, 1000 instances) alternately with
``opentelemetry`` not importable (the hooks are None checks), with the API
only (no SDK configured: no-op tracer and meter) and with the SDK, every
span exported to an in-memory exporter and every metric to an in-memory
reader; prints each run's JSON line and the median throughput per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = {
    "absent": "import sys; sys.modules['opentelemetry'] = None",
    "api": "",
    "sdk": (
        "from opentelemetry import trace, metrics\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
        "InMemorySpanExporter\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "tp = TracerProvider(); tp.add_span_processor("
        "SimpleSpanProcessor(InMemorySpanExporter()))\n"
        "trace.set_tracer_provider(tp)\n"
        "metrics.set_meter_provider(MeterProvider("
        "metric_readers=[InMemoryMetricReader()]))"
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--script", default="perdure_chain.py")
    ap.add_argument("--repeat", type=int, default=3)
    args, rest = ap.parse_known_args()
    rest = rest or ["1000"]
    script = os.path.join(HERE, args.script)
    runs: dict[str, list[dict[str, object]]] = {mode: [] for mode in SETUP}
    for _ in range(args.repeat):
        for mode, setup in SETUP.items():
            code = (
                f"{setup}\nimport runpy, sys\nsys.path.insert(0, {HERE!r})\n"
                f"sys.argv = [{script!r}, *{rest!r}]\n"
                f"runpy.run_path({script!r}, run_name='__main__')"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
            record = json.loads(out.strip().splitlines()[-1])
            print(mode, json.dumps(record), flush=True)
            runs[mode].append(record)
    for mode, records in runs.items():
        walls = [float(r["wall_s"]) for r in records]  # type: ignore[arg-type]
        print(f"{mode}: median wall {statistics.median(walls):.3f} s ({walls})")


if __name__ == "__main__":
    main()
