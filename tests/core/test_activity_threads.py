"""The pool that runs sync activities: hung jobs, given-up jobs, shutdown.

A hung sync activity cannot be killed; the pool must keep the others
running (a replacement thread, up to ``spare`` at a time), drop jobs given
up before they ran, and refuse work once shut down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from perdure._threads import ActivityThreads

WAIT = 10.0


def blocker() -> tuple[threading.Event, threading.Event, Callable[[], str]]:
    """A job that reports it started and returns once released."""
    started, release = threading.Event(), threading.Event()

    def job() -> str:
        started.set()
        if not release.wait(WAIT):
            raise TimeoutError("never released")
        return "released"

    return started, release, job


async def started_in_thread(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT)


async def test_a_hung_job_given_up_gets_a_replacement_thread() -> None:
    pool = ActivityThreads(1, spare=1)
    started, release, hung = blocker()
    first = pool.submit(hung, "hung")
    await started_in_thread(started)
    second = pool.submit(lambda: "next", "next")
    assert pool.give_up(first) is True
    assert await asyncio.wait_for(second.future, WAIT) == "next"
    assert pool.running() == ["hung"]
    release.set()
    for _ in range(int(WAIT / 0.01)):
        if not pool.running():
            break
        await asyncio.sleep(0.01)
    assert pool.running() == []
    # Its outcome is ignored: nobody waits for a given-up job.
    assert not first.future.done()
    pool.shutdown()


async def test_past_the_spare_limit_a_hung_thread_stays_counted() -> None:
    pool = ActivityThreads(1, spare=0)
    started, release, hung = blocker()
    first = pool.submit(hung, "hung")
    await started_in_thread(started)
    second = pool.submit(lambda: "next", "next")
    assert pool.give_up(first) is False
    await asyncio.sleep(0.2)
    assert not second.future.done()  # no thread for it while the hung one runs
    release.set()
    assert await asyncio.wait_for(second.future, WAIT) == "next"
    assert await asyncio.wait_for(first.future, WAIT) == "released"
    pool.shutdown()


async def test_a_job_given_up_before_it_ran_never_runs() -> None:
    pool = ActivityThreads(1, spare=0)
    started, release, hung = blocker()
    first = pool.submit(hung, "hung")
    await started_in_thread(started)
    ran: list[str] = []
    queued = pool.submit(lambda: ran.append("queued"), "queued")
    assert pool.give_up(queued) is None
    assert pool.give_up(queued) is None  # idempotent
    release.set()
    assert await asyncio.wait_for(first.future, WAIT) == "released"
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(queued.future, WAIT)
    assert ran == []
    assert pool.give_up(first) is None  # already done: nothing to give up
    pool.shutdown()


async def test_shutdown_drops_queued_jobs_and_refuses_new_ones() -> None:
    pool = ActivityThreads(1, spare=0)
    started, release, hung = blocker()
    first = pool.submit(hung, "hung")
    await started_in_thread(started)
    ran: list[str] = []
    queued = pool.submit(lambda: ran.append("queued"), "queued")
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None, "late")
    release.set()
    # The running job still reports; the queued one is cancelled unrun.
    assert await asyncio.wait_for(first.future, WAIT) == "released"
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(queued.future, WAIT)
    assert ran == []


async def test_an_exception_from_a_job_reaches_its_future() -> None:
    pool = ActivityThreads(2, spare=0)

    def fails() -> None:
        raise SystemExit(3)  # BaseException too: it fails the attempt only

    job = pool.submit(fails, "fails")
    with pytest.raises(SystemExit):
        await asyncio.wait_for(job.future, WAIT)
    assert await asyncio.wait_for(pool.submit(lambda: 1, "after").future, WAIT) == 1
    pool.shutdown()


def test_a_job_that_outlives_its_event_loop_is_dropped_quietly() -> None:
    pool = ActivityThreads(1, spare=0)
    started, release, hung = blocker()
    threads: list[threading.Thread] = []

    def job() -> str:
        threads.append(threading.current_thread())
        return hung()

    async def main() -> None:
        pool.submit(job, "hung")
        await started_in_thread(started)

    errors: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        asyncio.run(main())  # the loop closes with the job still running
        release.set()
        pool.shutdown()  # its thread exits once it has delivered
        threads[0].join(WAIT)
        assert not threads[0].is_alive()
    finally:
        threading.excepthook = previous
    assert errors == []
