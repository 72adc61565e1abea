"""The public surface: `perdure.__all__` is pinned, sorted and documented."""

from __future__ import annotations

import inspect
import typing
from types import ModuleType

import perdure
import perdure.events


def _public(module: ModuleType) -> list[str]:
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    ]


def test_all_is_sorted_and_complete() -> None:
    assert perdure.__all__ == sorted(_public(perdure))


def test_the_surface_is_pinned() -> None:
    # A change here is a change to the public API: say so in CHANGELOG.md.
    assert perdure.__all__ == [
        "ActivityContext",
        "ActivityFailed",
        "Cancelled",
        "Client",
        "DurableFuture",
        "DurableTimeout",
        "ErrorCategory",
        "ErrorInfo",
        "Event",
        "HandlerNotFound",
        "InstanceExists",
        "InstanceNotFound",
        "InstancePage",
        "InstanceStatus",
        "NonRetryableError",
        "NondeterminismError",
        "OrchestrationContext",
        "OrchestrationFailed",
        "OrchestrationState",
        "PayloadError",
        "PerdureError",
        "RetryPolicy",
        "Runtime",
        "ScheduleInfo",
        "StartSpec",
        "StorageError",
        "SubOrchestrationFailed",
        "SyncClient",
        "TaskGroup",
        "ValueTooLarge",
        "activity",
        "durable_async",
        "orchestration",
    ]


def test_every_export_is_documented() -> None:
    module_doc = perdure.__doc__ or ""
    for name in perdure.__all__:
        obj = getattr(perdure, name)
        if typing.get_origin(obj) is typing.Literal:
            # Type aliases cannot carry a docstring: the package's does.
            assert f"    {name}: " in module_doc, name
        else:
            assert inspect.getdoc(obj), name


def test_public_names_read_as_perdure_x() -> None:
    for name in perdure.__all__:
        obj = getattr(perdure, name)
        if typing.get_origin(obj) is None:
            assert obj.__module__ == "perdure", name


def test_events_module() -> None:
    events = perdure.events
    assert events.__all__ == sorted(_public(events))
    classes = [getattr(events, n) for n in events.__all__ if n != "AnyEvent"]
    assert all(issubclass(cls, perdure.Event) for cls in classes)
    assert all(inspect.getdoc(cls) for cls in classes)
    concrete = set(typing.get_args(events.AnyEvent))
    assert concrete == set(classes) - {perdure.Event}
    # Every event class the engine writes (a new one must be exported too).
    # (By name: a slots dataclass leaves its first class object behind.)
    written = {cls.__name__ for cls in perdure.Event.__subclasses__()}
    assert {cls.__name__ for cls in concrete} == written
