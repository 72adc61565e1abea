"""`OrchestrationState`: an instance's status as the client reports it."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic

from ._codec import from_json, loads
from ._errors import ErrorInfo, PayloadError
from .providers._base import InstanceRecord, InstanceStatus

if TYPE_CHECKING:
    # A default keeps a bare ``OrchestrationState`` meaning
    # ``OrchestrationState[Any]`` (PEP 696); at run time no default is needed.
    from typing_extensions import TypeVar

    T = TypeVar("T", default=Any)
else:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["OrchestrationState", "decode_output"]


@dataclass(frozen=True, slots=True)
class OrchestrationState(Generic[T]):
    """Status of an orchestration instance (its latest execution).

    ``OrchestrationState[T]`` is what ``wait_for_orchestration(...,
    result_type=T)`` returns: its ``output`` was decoded as ``T``.

    Attributes:
        instance_id: The instance id.
        name: Orchestration name.
        version: Orchestration version.
        execution_id: Current execution (grows with continue-as-new).
        status: ``"Running"``, ``"Suspended"`` (stopped by an error until
            `Client.resume`), ``"Completed"``, ``"Failed"`` or ``"Cancelled"``.
        output: Decoded output when Completed (``None`` otherwise): JSON
            values, or ``T`` when the state is an ``OrchestrationState[T]``.
        error: `ErrorInfo` when Failed or Cancelled.
        custom_status: Last value given to ``set_custom_status``.
        created_at: When the instance was created.
        updated_at: When it last changed.
    """

    instance_id: str
    name: str
    version: str
    execution_id: int
    status: InstanceStatus
    output: T
    error: ErrorInfo | None
    custom_status: Any
    created_at: datetime
    updated_at: datetime

    @property
    def is_finished(self) -> bool:
        """True once the instance is Completed, Failed or Cancelled."""
        return self.status != "Running"

    @classmethod
    def from_record(cls, record: InstanceRecord) -> OrchestrationState:
        """Build from a provider row."""
        output: Any = loads(record.output) if record.output is not None else None
        return cls(
            instance_id=record.instance_id,
            name=record.name,
            version=record.version,
            execution_id=record.execution_id,
            status=record.status,
            output=output,
            error=ErrorInfo.from_json(loads(record.error)) if record.error else None,
            custom_status=(
                loads(record.custom_status)
                if record.custom_status is not None
                else None
            ),
            created_at=datetime.fromtimestamp(record.created_at, UTC),
            updated_at=datetime.fromtimestamp(record.updated_at, UTC),
        )


def decode_output(state: OrchestrationState, hint: Any) -> OrchestrationState[Any]:
    """Return *state* with its output decoded as *hint* (`from_json` hints).

    Only a ``Completed`` state has an output to decode; others are returned
    as they are (their output is ``None``).

    Raises:
        PayloadError: The output does not fit *hint* (a number where a
            dataclass was asked for, a dict missing a required field).
    """
    if state.status != "Completed":
        return state
    what = f"output of instance {state.instance_id!r}"
    try:
        output = from_json(state.output, hint)
    except PayloadError as exc:
        raise PayloadError(f"{what}: {exc}") from exc
    _check_fits(output, hint, what)
    return dataclasses.replace(state, output=output)


_CONTAINERS = (None, list, tuple, set, frozenset, dict)


def _check_fits(value: Any, hint: Any, what: str) -> None:
    # from_json leaves a value it cannot rebuild unchanged (a str where a
    # dataclass is expected); a client asking for a type wants an error.
    # A Completed state's output is a T: None only if T allows it (T | None).
    origin = typing.get_origin(hint)
    cls = hint if origin is None else origin
    if origin not in _CONTAINERS or not isinstance(cls, type) or cls is object:
        return  # a union, a Literal, Any...: from_json's own checks stand
    if cls is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if not isinstance(value, cls):
        raise PayloadError(
            f"{what}: {value!r} is a {type(value).__name__}, not {_name(hint)}"
        )


def _name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint)
