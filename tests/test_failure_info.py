"""`ErrorInfo.stack`, `format_stack`, `RetryPolicy.non_retryable` and the
activity context's key and heartbeats, without a runtime."""

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest

import perdure
from perdure import ActivityContext, ErrorInfo, RetryPolicy
from perdure._errors import MAX_STACK, format_stack

PACKAGE_DIR = os.path.dirname(perdure.__file__)


def perdure_runner() -> Any:
    """``run(fn)``: calls *fn* and returns what it raised, from a frame whose
    file is inside the perdure package (as the activity worker's are)."""
    source = (
        "def run(fn):\n"
        "    try:\n"
        "        fn()\n"
        "    except BaseException as exc:\n"
        "        return exc\n"
    )
    namespace: dict[str, Any] = {}
    exec(
        compile(source, os.path.join(PACKAGE_DIR, "_runner_for_tests.py"), "exec"),
        namespace,
    )
    return namespace["run"]


def nested_user_code() -> None:
    helper_that_fails()


def helper_that_fails() -> None:
    raise ValueError("card declined")


def test_stack_starts_at_the_first_user_frame() -> None:
    exc = perdure_runner()(nested_user_code)
    stack = format_stack(exc)
    assert stack is not None
    assert stack.startswith("Traceback (most recent call last):\n")
    assert "_runner_for_tests.py" not in stack
    assert "in nested_user_code" in stack and "in helper_that_fails" in stack
    assert stack.endswith("ValueError: card declined\n")


def test_stack_of_perdures_own_failure_is_none() -> None:
    def fail() -> None:
        raise TimeoutError("activity 'x' timed out")

    exc = perdure_runner()(fail)
    exc.__traceback__ = exc.__traceback__.tb_next.tb_next  # only perdure's frame
    assert format_stack(exc) is None
    assert format_stack(ValueError("never raised")) is None


def test_stack_keeps_chained_causes() -> None:
    def fail() -> None:
        try:
            stock: dict[str, int] = {}
            stock["sku"]
        except KeyError as cause:
            raise RuntimeError("lookup failed") from cause

    stack = format_stack(perdure_runner()(fail))
    assert stack is not None
    assert "KeyError: 'sku'" in stack
    assert "direct cause of the following exception" in stack
    assert stack.endswith("RuntimeError: lookup failed\n")


def test_long_stack_keeps_its_end() -> None:
    def fail() -> None:
        raise ValueError("x" * (2 * MAX_STACK) + " the end")

    stack = format_stack(perdure_runner()(fail))
    assert stack is not None
    assert stack.startswith("... (") and "characters cut)\n" in stack
    assert len(stack) < MAX_STACK + 40
    assert stack.endswith(" the end\n")


def test_stack_is_always_storable() -> None:
    def fail() -> None:
        raise ValueError("bad name \udc80")  # a lone surrogate (os.listdir)

    stack = format_stack(perdure_runner()(fail))
    assert stack is not None
    stack.encode("utf-8")  # would raise if the surrogate were left in
    assert "\\udc80" in stack


def test_error_info_json_without_stack_is_unchanged() -> None:
    """Histories written before stacks existed read back and re-encode as is."""
    stored = {
        "type": "ValueError",
        "message": "gateway down",
        "category": "application",
    }
    info = ErrorInfo.from_json(stored)
    assert info == ErrorInfo("ValueError", "gateway down")
    assert info.stack is None
    assert info.to_json() == stored
    with_stack = {**stored, "stack": "Traceback ...\n"}
    assert ErrorInfo.from_json(with_stack).to_json() == with_stack
    assert ErrorInfo.from_json({**stored, "stack": 5}).stack is None


def test_from_exception_captures_the_stack_only_when_asked() -> None:
    exc = perdure_runner()(nested_user_code)
    assert ErrorInfo.from_exception(exc).stack is None
    info = ErrorInfo.from_exception(exc, with_stack=True)
    assert (info.type, info.message) == ("ValueError", "card declined")
    assert info.stack == format_stack(exc)
    # A perdure error keeps the info it carries, stack included.
    failed = perdure.ActivityFailed("pay", "card declined", "ValueError", stack="S")
    assert ErrorInfo.from_exception(failed).stack == "S"
    assert ErrorInfo.from_exception(failed, "poison").stack == "S"
    copy = pickle.loads(pickle.dumps(failed))
    assert (copy.stack, copy.info) == ("S", failed.info)


def test_sub_orchestration_failure_keeps_the_childs_stack() -> None:
    child = ErrorInfo("KeyError", "'zip'", stack="Traceback ...\n")
    exc = perdure.SubOrchestrationFailed("Ship", "o1::sub::2", child)
    assert ErrorInfo.from_exception(exc) == child


class Permanent(perdure.NonRetryableError):
    pass


class Malformed(LookupError):
    pass


@pytest.mark.parametrize(
    ("listed", "exc", "retried"),
    [
        ((), ValueError(), True),
        ((), perdure.NonRetryableError("stop"), False),
        ((), Permanent("stop"), False),
        ((KeyError,), KeyError("k"), False),
        (("KeyError",), KeyError("k"), False),
        ((LookupError,), Malformed(), False),
        (("LookupError",), Malformed(), False),
        ((f"{__name__}.Malformed",), Malformed(), False),
        (("Malformed",), Malformed(), False),
        (("other.module.Malformed",), Malformed(), True),
        ((Malformed,), LookupError(), True),  # a base is not its subclass
        ((KeyError, "TimeoutError"), TimeoutError(), False),
    ],
)
def test_non_retryable_matching(
    listed: tuple[Any, ...], exc: BaseException, retried: bool
) -> None:
    policy = RetryPolicy(non_retryable=listed)
    assert policy.retries(exc) is retried
    # What the worker sees: the policy after its JSON round trip.
    assert RetryPolicy.from_json(policy.to_json()).retries(exc) is retried


def test_non_retryable_is_stored_by_name() -> None:
    policy = RetryPolicy(non_retryable=(KeyError, Malformed, " Custom "))
    assert policy.non_retryable == (KeyError, Malformed, " Custom ")
    assert policy.to_json()["non_retryable"] == [
        "KeyError",
        f"{__name__}.Malformed",
        "Custom",
    ]
    assert "non_retryable" not in RetryPolicy().to_json()
    assert RetryPolicy.from_json(RetryPolicy().to_json()) == RetryPolicy()


@pytest.mark.parametrize("bad", ["KeyError", KeyError, (int,), ("",), (None,)])
def test_non_retryable_refuses_what_is_not_a_tuple_of_exceptions(bad: Any) -> None:
    with pytest.raises(TypeError, match="non_retryable"):
        RetryPolicy(non_retryable=bad)


def test_idempotency_key_and_heartbeat_in_memory() -> None:
    ctx = ActivityContext("order-1", 2, "Charge", 1, event_id=5)
    assert ctx.idempotency_key == "order-1:2:5"
    ctx._scheduled_at = 1_700_000_000.25
    assert ctx.idempotency_key == f"order-1:2:5:{1_700_000_000_250_000:x}"
    assert ctx.heartbeat_details is None and ctx._unsaved_details() is None
    ctx.heartbeat({"page": 3})
    ctx.heartbeat()  # liveness only: the details stay
    assert ctx._unsaved_details() == (1, '{"page":3}')
    with pytest.raises(perdure.PayloadError, match="heartbeat details"):
        ctx.heartbeat({"at": object()})
    assert ctx._unsaved_details() == (1, '{"page":3}')  # nothing recorded
