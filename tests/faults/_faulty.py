"""A `Provider` wrapper that injects storage faults, for tests.

`FaultyProvider` forwards every verb to the provider it wraps. Chosen verbs
can fail with `StorageError`, either on their Nth call (`fail_nth`) or at
random (``rate``, seeded, up to ``budget`` faults), and calls can be slowed
down. A fault comes in one of two forms:

* ``before``: nothing reaches storage (an outage);
* ``after``: the call is made and its effects stay, but the caller gets the
  error instead of the reply (a connection lost on the way back).

Only the runtime's verbs are faulted (not ``open``, ``close``, ``clock`` or
``wait``); the client verbs are faulted only if listed in ``verbs``.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

from perdure import StorageError
from perdure.providers import (
    ActivityItem,
    ActivityResult,
    ActivityRouting,
    Channel,
    Handlers,
    InstanceBatch,
    InstanceQuery,
    InstanceRecord,
    InstanceStatus,
    Message,
    NewInstance,
    OrchestrationItem,
    Provider,
    RoutesActivities,
    TurnCommit,
)

__all__ = ["RUNTIME_VERBS", "FaultyProvider", "Mode"]

T = TypeVar("T")
Mode = Literal["before", "after"]

#: Every verb the runtime's dispatcher and worker call.
RUNTIME_VERBS = frozenset(
    {
        "fetch_orchestrations",
        "waiting_instances",
        "commit_turns",
        "abandon_orchestration",
        "read_history",
        "fetch_activities",
        "fetch_routed_activities",
        "renew_activity_sessions",
        "release_activity_sessions",
        "waiting_activities",
        "complete_activities",
        "abandon_activity",
        "renew_activity_locks",
    }
)


class FaultyProvider:
    """Wraps *inner*; fails or delays chosen calls.

    Args:
        inner: The provider that does the work (opened and closed through
            this object).
        seed: Seeds the random faults and delays.
        rate: Probability that a call of a verb in *verbs* fails.
        rates: Per-verb probabilities that override *rate*.
        budget: At most this many random faults in all; then calls pass.
        verbs: Verbs that may fail at random.
        slow_rate: Probability that a call is delayed first.
        max_delay: Longest such delay, in seconds.
    """

    def __init__(
        self,
        inner: Provider,
        *,
        seed: int = 0,
        rate: float = 0.0,
        budget: int = 0,
        verbs: frozenset[str] = RUNTIME_VERBS,
        rates: dict[str, float] | None = None,
        slow_rate: float = 0.0,
        max_delay: float = 0.0,
    ) -> None:
        self.inner = inner
        self._random = random.Random(seed)
        self._rate = rate
        self._budget = budget
        self._verbs = verbs
        self._rates = dict(rates or {})
        self._slow_rate = slow_rate
        self._max_delay = max_delay
        self._planned: dict[tuple[str, int], Mode] = {}
        #: Calls made, per verb.
        self.calls: Counter[str] = Counter()
        #: Faults injected, per ``(verb, mode)``.
        self.faults: Counter[tuple[str, Mode]] = Counter()

    def __repr__(self) -> str:
        return f"FaultyProvider({self.inner!r})"

    def fail_nth(self, verb: str, n: int, mode: Mode = "before") -> None:
        """Make the *n*-th call (from 1) of *verb* fail."""
        self._planned[(verb, n)] = mode

    def faults_of(self, verb: str) -> int:
        """Faults injected into *verb*, both modes."""
        return self.faults[(verb, "before")] + self.faults[(verb, "after")]

    @property
    def injected(self) -> int:
        """Faults injected so far."""
        return sum(self.faults.values())

    def _fault(self, verb: str) -> Mode | None:
        planned = self._planned.pop((verb, self.calls[verb]), None)
        if planned is not None:
            return planned
        if verb not in self._verbs or self._budget <= 0:
            return None
        if self._random.random() >= self._rates.get(verb, self._rate):
            return None
        self._budget -= 1
        return "before" if self._random.random() < 0.5 else "after"

    async def _call(self, verb: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls[verb] += 1
        mode = self._fault(verb)
        if self._slow_rate and self._random.random() < self._slow_rate:
            await asyncio.sleep(self._random.uniform(0.0, self._max_delay))
        if mode == "before":
            self.faults[(verb, mode)] += 1
            raise StorageError(f"injected fault before {verb} #{self.calls[verb]}")
        result = await call()
        if mode == "after":
            self.faults[(verb, mode)] += 1
            raise StorageError(f"injected fault after {verb} #{self.calls[verb]}")
        return result

    # --- not faulted -------------------------------------------------------

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def __aenter__(self) -> FaultyProvider:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def clock(self) -> float:
        return self.inner.clock()

    async def wait(self, channel: Channel, timeout: float) -> None:
        await self.inner.wait(channel, timeout)

    # --- client verbs ------------------------------------------------------

    async def create_instance(self, new: NewInstance) -> None:
        await self._call("create_instance", lambda: self.inner.create_instance(new))

    async def enqueue(self, instance_id: str, message: Message) -> None:
        await self._call("enqueue", lambda: self.inner.enqueue(instance_id, message))

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return await self._call(
            "get_instance", lambda: self.inner.get_instance(instance_id)
        )

    async def read_values(self, instance_id: str) -> str | None:
        return await self._call(
            "read_values", lambda: self.inner.read_values(instance_id)
        )

    async def list_instances(
        self, *, status: InstanceStatus | None = None, limit: int = 100
    ) -> list[InstanceRecord]:
        return await self._call(
            "list_instances",
            lambda: self.inner.list_instances(status=status, limit=limit),
        )

    async def query_instances(self, query: InstanceQuery) -> InstanceBatch:
        return await self._call(
            "query_instances", lambda: self.inner.query_instances(query)
        )

    async def purge_instances(
        self,
        *,
        statuses: Sequence[InstanceStatus],
        finished_before: float,
        limit: int,
    ) -> int:
        return await self._call(
            "purge_instances",
            lambda: self.inner.purge_instances(
                statuses=statuses, finished_before=finished_before, limit=limit
            ),
        )

    async def read_history(
        self, instance_id: str, execution_id: int | None = None
    ) -> list[str]:
        return await self._call(
            "read_history", lambda: self.inner.read_history(instance_id, execution_id)
        )

    async def delete_instance(self, instance_id: str) -> bool:
        return await self._call(
            "delete_instance", lambda: self.inner.delete_instance(instance_id)
        )

    # --- dispatcher ----------------------------------------------------------

    async def fetch_orchestrations(
        self, max_items: int, lock_timeout: float, handlers: Handlers | None = None
    ) -> list[OrchestrationItem]:
        return await self._call(
            "fetch_orchestrations",
            lambda: self.inner.fetch_orchestrations(max_items, lock_timeout, handlers),
        )

    async def waiting_instances(
        self, handlers: Handlers, min_wait: float
    ) -> list[tuple[str, str, int]]:
        return await self._call(
            "waiting_instances",
            lambda: self.inner.waiting_instances(handlers, min_wait),
        )

    async def resume_instance(self, instance_id: str) -> bool:
        return await self._call(
            "resume_instance", lambda: self.inner.resume_instance(instance_id)
        )

    async def rewind_instance(self, instance_id: str, message: Message) -> bool:
        return await self._call(
            "rewind_instance", lambda: self.inner.rewind_instance(instance_id, message)
        )

    async def commit_turns(self, turns: Sequence[TurnCommit]) -> list[bool]:
        return await self._call("commit_turns", lambda: self.inner.commit_turns(turns))

    async def abandon_orchestration(
        self, instance_id: str, lock_token: str, delay: float = 0.0
    ) -> None:
        await self._call(
            "abandon_orchestration",
            lambda: self.inner.abandon_orchestration(instance_id, lock_token, delay),
        )

    # --- activity worker -------------------------------------------------------

    async def fetch_activities(
        self, max_items: int, lock_timeout: float
    ) -> list[ActivityItem]:
        return await self._call(
            "fetch_activities",
            lambda: self.inner.fetch_activities(max_items, lock_timeout),
        )

    async def fetch_routed_activities(
        self, max_items: int, lock_timeout: float, routing: ActivityRouting
    ) -> list[ActivityItem]:
        routes = self._routes()
        return await self._call(
            "fetch_routed_activities",
            lambda: routes.fetch_routed_activities(max_items, lock_timeout, routing),
        )

    async def renew_activity_sessions(
        self, owner: str, sessions: Sequence[str], lease: float
    ) -> list[str]:
        routes = self._routes()
        return await self._call(
            "renew_activity_sessions",
            lambda: routes.renew_activity_sessions(owner, sessions, lease),
        )

    async def release_activity_sessions(self, owner: str) -> None:
        routes = self._routes()
        await self._call(
            "release_activity_sessions",
            lambda: routes.release_activity_sessions(owner),
        )

    async def waiting_activities(
        self, routing: ActivityRouting, min_wait: float
    ) -> list[tuple[str, str | None, int]]:
        routes = self._routes()
        return await self._call(
            "waiting_activities", lambda: routes.waiting_activities(routing, min_wait)
        )

    def _routes(self) -> RoutesActivities:
        assert isinstance(self.inner, RoutesActivities), self.inner
        return self.inner

    async def complete_activities(self, results: Sequence[ActivityResult]) -> None:
        await self._call(
            "complete_activities", lambda: self.inner.complete_activities(results)
        )

    async def abandon_activity(
        self, id: int, lock_token: str, delay: float = 0.0
    ) -> None:
        await self._call(
            "abandon_activity",
            lambda: self.inner.abandon_activity(id, lock_token, delay),
        )

    async def renew_activity_locks(
        self, leases: Sequence[tuple[int, str]], lock_timeout: float
    ) -> list[int]:
        return await self._call(
            "renew_activity_locks",
            lambda: self.inner.renew_activity_locks(leases, lock_timeout),
        )
