"""Recording what already happened elsewhere waits out a short database outage in place."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from shared.db.outages import record_patiently, record_patiently_async


def outage() -> OperationalError:
    return OperationalError("UPDATE deliveries", {}, ConnectionRefusedError("refused"))


class Flaky:
    """A record that fails ``failures`` times with an outage, then succeeds."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures, self.calls = failures, 0
        self.error = error or outage()

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "recorded"


def test_a_record_is_tried_again_while_the_database_is_out_then_stored() -> None:
    waited: list[float] = []
    record = Flaky(failures=3)
    assert record_patiently(record, patience=20, sleep=waited.append) == "recorded"
    assert record.calls == 4
    assert waited == [0.25, 0.5, 1.0]


def test_an_outage_longer_than_the_patience_is_left_to_the_retry_tiers() -> None:
    # given a clock the waits move forward, and a database that never comes back
    clock = [1000.0]
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        clock[0] += seconds

    # when a record is tried with ten seconds of patience, then the outage is raised
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("shared.db.outages.time.monotonic", lambda: clock[0])
        with pytest.raises(OperationalError):
            record_patiently(Flaky(failures=100), patience=10, sleep=sleep)
    # after waiting no longer than the patience in all
    assert waited == [0.25, 0.5, 1.0, 2.0, 4.0]


def test_an_error_that_is_not_an_outage_is_raised_at_once() -> None:
    record = Flaky(failures=1, error=ValueError("bug"))
    with pytest.raises(ValueError):
        record_patiently(record, patience=20, sleep=lambda _: None)
    assert record.calls == 1


def test_an_asyncio_worker_waits_out_the_outage_the_same_way() -> None:
    record = Flaky(failures=2)

    async def stored() -> str:
        return record()

    assert asyncio.run(record_patiently_async(stored, patience=20)) == "recorded"
    assert record.calls == 3
