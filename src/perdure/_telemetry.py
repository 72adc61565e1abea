"""The engine's telemetry hooks: OpenTelemetry when importable, else nothing.

`get` returns the process's `Telemetry` (`._otel`), created on first use,
or None when ``opentelemetry-api`` is not installed (``pip install
"perdure[otel]"``). The dispatcher, the activity worker and the client call
it once, when constructed; every hook site is then a None check, and
perdure imports nothing of OpenTelemetry when it is absent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._otel import Telemetry

__all__ = ["get", "install"]

_installed = False  # install() decided: get() returns _telemetry as is
_absent = False  # opentelemetry-api is not importable
_telemetry: Telemetry | None = None
# The API's stand-ins used until an SDK is configured: spans and metrics
# made through them go nowhere, so the hooks are skipped (the API alone
# cost ~9 % on the chain benchmark).
_UNCONFIGURED = frozenset(
    {
        "ProxyTracerProvider",
        "NoOpTracerProvider",
        "_ProxyMeterProvider",
        "NoOpMeterProvider",
    }
)


def get() -> Telemetry | None:
    """The process's telemetry, or None.

    None without ``opentelemetry-api``, and while no OpenTelemetry SDK is
    configured (neither a tracer nor a meter provider set): configure it
    before creating the `perdure.Runtime` or `perdure.Client` to be traced.
    """
    global _absent, _telemetry
    if _installed or _telemetry is not None or _absent:
        return _telemetry
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        _absent = True
        return None
    tracing = type(trace.get_tracer_provider()).__name__ not in _UNCONFIGURED
    measuring = type(metrics.get_meter_provider()).__name__ not in _UNCONFIGURED
    if not (tracing or measuring):
        return None  # not cached: the next component asks again
    from ._otel import Telemetry

    _telemetry = Telemetry()
    return _telemetry


def install(telemetry: Telemetry | None) -> Telemetry | None:
    """Use *telemetry* for components created from now on; return the old one.

    For tests: a `Telemetry` on private providers, or None for none.
    """
    global _installed, _telemetry
    old = get()
    _installed, _telemetry = True, telemetry
    return old
