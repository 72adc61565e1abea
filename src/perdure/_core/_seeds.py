"""Deterministic identity and randomness for orchestration code.

Seeds come from the instance id, the execution number and a counter, so
replay draws the same guids and random numbers in the same order.
"""

from __future__ import annotations

import hashlib
import random as _random
import uuid

__all__ = ["Seeds"]


class Seeds:
    """The seed sequence of one execution."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self, instance_id: str, execution_id: int) -> None:
        self._prefix = f"{instance_id}\0{execution_id}\0"
        self._counter = 0

    def next(self) -> int:
        """Return the next deterministic seed."""
        self._counter += 1
        digest = hashlib.sha256(f"{self._prefix}{self._counter}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def guid(self) -> str:
        """Return a deterministic UUID string."""
        return str(uuid.UUID(int=self.next() << 64 | self.next(), version=4))

    def random(self) -> _random.Random:
        """Return a deterministically seeded `random.Random`."""
        return _random.Random(self.next())
