"""The retry decision: which tier the next attempt waits in, or park."""

from __future__ import annotations

import pytest

from shared.errors import MessageDecodeError, PermanentError, TransientError
from shared.messaging.policy import UNEXPECTED_RETRY_SCHEDULE, next_retry_delay_ms, reason_of
from shared.messaging.topology import retry_queue_arguments, retry_queue_name


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 10_000), (2, 60_000), (3, 300_000), (4, None)]
)
def test_a_transient_failure_follows_its_schedule_then_is_parked(
    attempt: int, expected: int | None
) -> None:
    # given a transient failure with a three-step schedule
    failure = TransientError("Server error", schedule=[10, 60, 300])
    # when attempt N failed, then the next waits in the schedule's Nth tier
    assert next_retry_delay_ms(failure, attempt) == expected


def test_an_empty_schedule_parks_at_the_first_failure() -> None:
    assert next_retry_delay_ms(TransientError("down", schedule=[]), 1) is None


def test_a_sub_second_delay_keeps_its_milliseconds() -> None:
    assert next_retry_delay_ms(TransientError("down", schedule=[0.5]), 1) == 500


@pytest.mark.parametrize(
    "failure", [PermanentError("bad config"), MessageDecodeError("not json", b"x")]
)
def test_permanent_failures_and_undecodable_messages_are_parked_at_once(failure: Exception) -> None:
    assert next_retry_delay_ms(failure, 1) is None


def test_an_unexpected_exception_is_retried_a_bounded_number_of_times() -> None:
    failure = KeyError("bug")
    delays = [next_retry_delay_ms(failure, n) for n in range(1, len(UNEXPECTED_RETRY_SCHEDULE) + 2)]
    assert delays[:-1] == [round(d * 1000) for d in UNEXPECTED_RETRY_SCHEDULE]
    assert delays[-1] is None


def test_reasons_name_unexpected_exceptions_but_not_expected_ones() -> None:
    assert reason_of(TransientError("Timed out after 10s", [1])) == "Timed out after 10s"
    assert reason_of(PermanentError("no such recipient")) == "no such recipient"
    assert reason_of(KeyError("x")) == "KeyError: 'x'"


def test_a_retry_tier_dead_letters_back_to_its_work_queue_after_its_delay() -> None:
    assert retry_queue_name("http_delivery", 10_000) == "http_delivery.retry.10000"
    assert retry_queue_arguments("http_delivery", 10_000) == {
        "x-message-ttl": 10_000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "http_delivery",
    }


def test_a_database_outage_in_a_handler_is_retried_on_the_long_outage_schedule() -> None:
    # given a handler's database error that means the database is unreachable
    from sqlalchemy.exc import OperationalError

    from shared.messaging.policy import OUTAGE_RETRY_SCHEDULE, outage_error

    error = OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    # when the runtime turns it into a failure of the message
    failure = outage_error(error)

    # then it is a transient failure waiting for the database, not an unexpected one
    assert failure.schedule == OUTAGE_RETRY_SCHEDULE
    assert failure.reason.startswith("OperationalError")
    assert next_retry_delay_ms(failure, 5) == 20_000


def test_waiting_out_a_database_outage_does_not_use_up_the_recipients_retries() -> None:
    # given a message that already waited out eight database-outage failures
    from shared.messaging.policy import plan_failure

    options: dict[str, object] = {"attempt": 9, "failures": []}
    for n in range(1, 9):
        plan = plan_failure({**options, "attempt": n}, _outage())
        options["failures"] = plan.failures

    # when the recipient then fails for the first time (a two-step schedule)
    plan = plan_failure(options, TransientError("Server error", [10, 60]))

    # then it waits the schedule's first delay, not parked as if on its ninth attempt
    assert plan.delay_ms == 10_000
    assert plan.attempt == 9
    assert [f["kind"] for f in plan.failures] == ["outage"] * 8 + ["transient"]


def test_a_database_outage_is_waited_out_however_long_it_lasts() -> None:
    from shared.messaging.policy import OUTAGE_RETRY_SCHEDULE, plan_failure

    # given a message that failed on the outage more times than the schedule has delays
    failures = [{"kind": "outage", "reason": "down"}] * (len(OUTAGE_RETRY_SCHEDULE) + 20)

    # when it fails on the outage again
    plan = plan_failure({"attempt": len(failures) + 1, "failures": failures}, _outage())

    # then it waits the schedule's last delay again instead of being parked
    assert plan.delay_ms == round(OUTAGE_RETRY_SCHEDULE[-1] * 1000)


def test_a_recipients_schedule_used_up_parks_the_message_whatever_else_happened() -> None:
    from shared.messaging.policy import plan_failure

    failures = [{"kind": "transient"}, {"kind": "outage"}, {"kind": "transient"}]
    plan = plan_failure({"attempt": 4, "failures": failures}, TransientError("down", [10, 60]))
    assert plan.delay_ms is None


def _outage() -> TransientError:
    from sqlalchemy.exc import OperationalError

    from shared.messaging.policy import outage_error

    return outage_error(OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")))


def test_a_message_carries_its_newest_failures_and_the_totals_by_kind() -> None:
    from shared.messaging.policy import MAX_FAILURES_KEPT, plan_failure

    # given a message that waited out many database-outage failures
    options: dict[str, object] = {"attempt": 1}
    for n in range(1, MAX_FAILURES_KEPT + 31):
        plan = plan_failure({**options, "attempt": n}, _outage())
        options = plan.retry_options()

    # then it carries only the newest failures, but every one is counted
    assert len(options["failures"]) == MAX_FAILURES_KEPT  # type: ignore[arg-type]
    assert options["counts"] == {"outage": MAX_FAILURES_KEPT + 30}
    assert options["attempt"] == MAX_FAILURES_KEPT + 31


def test_an_outage_that_never_ends_parks_the_message_after_the_persistent_limit() -> None:
    from shared.messaging.policy import PERSISTENT_LIMIT, plan_failure

    below = plan_failure({"counts": {"outage": PERSISTENT_LIMIT - 1}}, _outage())
    beyond = plan_failure({"counts": {"outage": PERSISTENT_LIMIT}}, _outage())
    assert below.delay_ms is not None
    assert beyond.delay_ms is None
