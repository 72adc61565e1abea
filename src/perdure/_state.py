"""`OrchestrationState`: an instance's status as the client reports it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._codec import loads
from ._errors import ErrorInfo
from .providers._base import InstanceRecord, InstanceStatus

__all__ = ["OrchestrationState"]


@dataclass(frozen=True, slots=True)
class OrchestrationState:
    """Status of an orchestration instance (its latest execution).

    Attributes:
        instance_id: The instance id.
        name: Orchestration name.
        version: Orchestration version.
        execution_id: Current execution (grows with continue-as-new).
        status: ``"Running"``, ``"Suspended"`` (stopped by an error until
            `Client.resume`), ``"Completed"``, ``"Failed"`` or ``"Cancelled"``.
        output: Decoded output when Completed.
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
    output: Any
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
        return cls(
            instance_id=record.instance_id,
            name=record.name,
            version=record.version,
            execution_id=record.execution_id,
            status=record.status,
            output=loads(record.output) if record.output is not None else None,
            error=ErrorInfo.from_json(loads(record.error)) if record.error else None,
            custom_status=(
                loads(record.custom_status)
                if record.custom_status is not None
                else None
            ),
            created_at=datetime.fromtimestamp(record.created_at, UTC),
            updated_at=datetime.fromtimestamp(record.updated_at, UTC),
        )
