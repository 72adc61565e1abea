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

_loaded = False
_telemetry: Telemetry | None = None


def get() -> Telemetry | None:
    """The process's telemetry, or None without ``opentelemetry-api``."""
    global _loaded, _telemetry
    if not _loaded:
        _loaded = True
        try:
            from ._otel import Telemetry
        except ImportError as exc:
            if not (exc.name or "").startswith("opentelemetry"):
                raise
        else:
            _telemetry = Telemetry()
    return _telemetry


def install(telemetry: Telemetry | None) -> Telemetry | None:
    """Use *telemetry* for components created from now on; return the old one.

    For tests: a `Telemetry` on private providers, or None for none.
    """
    global _loaded, _telemetry
    old = get()
    _loaded, _telemetry = True, telemetry
    return old
