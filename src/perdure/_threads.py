"""The threads that run sync (``def``) activities.

Python cannot kill a thread. A sync activity that outlives its attempt (its
``timeout=`` passed, the orchestration cancelled it, or the runtime shut
down) keeps running in its thread until it returns on its own; its side
effects may still happen, and its outcome is ignored. Such an activity
should poll ``ctx.is_cancelled()``, which is set when its attempt is given
up.

So that hung attempts cannot starve the others (probe F6), a given-up
thread no longer counts towards the pool: the pool starts a replacement,
up to ``spare`` given-up threads at a time (each one logged by the worker).
The threads are daemon threads, so a hung activity does not keep the
process from exiting either.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ActivityThreads", "Job"]


class Job:
    """One sync call handed to the pool."""

    __slots__ = ("fn", "future", "label", "loop", "replaced", "started_at", "state")

    def __init__(
        self, fn: Callable[[], Any], label: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.fn = fn
        self.label = label
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        # queued -> running -> done; "dropped" if given up before it ran,
        # "abandoned" if given up while running.
        self.state = "queued"
        # True when a replacement thread was started for this job's thread.
        self.replaced = False
        # time.monotonic() when a thread began running it (None: queued).
        self.started_at: float | None = None


class ActivityThreads:
    """A pool of daemon threads that survives hung sync activities.

    Args:
        size: Threads that run jobs at the same time (given-up ones excluded).
        spare: Given-up threads that may be replaced while they still run.
    """

    def __init__(self, size: int, spare: int) -> None:
        self._size = size
        self._spare = spare
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # All counters and job states are guarded by _lock.
        self._counted = 0  # live threads counted towards size
        self._idle = 0  # of those, threads waiting for a job
        self._queued = 0  # jobs in the queue not yet taken
        self._replaced = 0  # given-up threads with a replacement, still running
        self._active: set[Job] = set()  # jobs running now (given-up ones too)
        self._closed = False

    def submit(self, fn: Callable[[], Any], label: str) -> Job:
        """Run *fn* in a thread; await ``job.future`` for its outcome."""
        job = Job(fn, label, asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                raise RuntimeError("the activity thread pool is shut down")
            self._queued += 1
            self._queue.put(job)
            self._grow()
        return job

    def give_up(self, job: Job) -> bool | None:
        """Stop waiting for *job*; its thread is no longer counted if possible.

        Returns:
            None if the job was not running (dropped or already done), True
            if its thread got a replacement, False if the spare limit was
            reached (the thread stays counted until the job returns).
        """
        with self._lock:
            if job.state == "queued":
                job.state = "dropped"
                self._queued -= 1
                return None
            if job.state != "running":
                return None
            job.state = "abandoned"
            if self._replaced >= self._spare:
                return False
            job.replaced = True
            self._replaced += 1
            self._counted -= 1
            self._grow()
            return True

    def running(self) -> list[str]:
        """Labels of the jobs whose threads are still running them."""
        with self._lock:
            return sorted(job.label for job in self._active)

    def shutdown(self) -> None:
        """Drop queued jobs and let idle threads exit; never waits for threads."""
        with self._lock:
            self._closed = True
            for _ in range(self._counted):
                self._queue.put(None)

    def _grow(self) -> None:
        # Called with _lock held.
        if self._queued > self._idle and self._counted < self._size:
            self._counted += 1
            self._idle += 1
            threading.Thread(
                target=self._work,
                name=f"perdure-activity-{self._counted}",
                daemon=True,
            ).start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            with self._lock:
                self._idle -= 1
                if job is None:
                    self._counted -= 1
                    return
                self._queued -= 1
                if job.state == "dropped" or self._closed:
                    self._idle += 1
                    _deliver(job, None, None, cancel=True)
                    continue
                job.state = "running"
                job.started_at = time.monotonic()
                self._active.add(job)
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.fn()
            except BaseException as exc:  # SystemExit too: it fails the attempt
                error = exc
            with self._lock:
                self._active.discard(job)
                if job.replaced:
                    self._replaced -= 1
                    return  # a replacement took this thread's place
                if job.state == "running":
                    job.state = "done"
                self._idle += 1
            _deliver(job, result, error)
            del job, result, error


def _deliver(
    job: Job, result: Any, error: BaseException | None, *, cancel: bool = False
) -> None:
    def settle() -> None:
        if job.future.done():
            return
        if cancel:
            job.future.cancel()
        elif error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)

    # The loop may be closed by now (a hung job outlived its runtime).
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(settle)
