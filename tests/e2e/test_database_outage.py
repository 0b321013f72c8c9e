"""With the database unreachable, intake and feedback answer 503 and store nothing half; they
recover by themselves. PostgreSQL is reached through a proxy the test cuts (SQLite is a local
file and has no outage of this kind, so these tests always run on PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests

from shared.db.engine import make_engine, make_session_factory, transaction, utcnow
from shared.db.models import Delivery, Event, Lead
from shared.ids import new_id
from tests.e2e.conftest import (
    LEADFLOW,
    Stack,
    merged_config,
    start_process,
    stop_process,
    wait_healthy,
)
from tests.support.infra import free_port, fresh_database
from tests.support.proxy import Proxy, check_unready_while_cut, readiness

POSTGRES = os.environ.get(
    "LEADFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://leadflow:leadflow@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class Cuttable:
    url: str  # the service's base URL
    proxy: Proxy  # between the service and PostgreSQL
    direct_url: str  # the service's database, not through the proxy


@contextlib.contextmanager
def behind_cuttable_database(
    stack: Stack, tmp_path: Path, service: str, port_variable: str
) -> Iterator[Cuttable]:
    """``leadflow <service>`` on a fresh, migrated and configured PostgreSQL database that
    it reaches through a proxy; stopped (exit 0 expected) afterwards."""
    with fresh_database(str(tmp_path), base=POSTGRES) as direct_url:
        env = {**stack.env, "LEADFLOW_DATABASE_URL": direct_url}
        config = tmp_path / "config.yaml"
        config.write_text(merged_config())
        for args in (["db", "upgrade"], ["config", "apply", str(config)]):
            subprocess.run([*LEADFLOW, *args], env=env, check=True, capture_output=True, timeout=60)
        proxy = Proxy(target_port=5432).start()
        proxied = direct_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        port = free_port()
        log = tmp_path / f"{service}.log"
        process = start_process(
            [sys.executable, "-m", "services.cli", service],
            {**env, "LEADFLOW_DATABASE_URL": proxied, port_variable: str(port)},
            log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(f"{url}/healthz", process, log)
            yield Cuttable(url, proxy, direct_url)
        finally:
            assert stop_process(process) == 0, log.read_text()[-2000:]
            proxy.stop()


@pytest.fixture
def intake_with_cuttable_database(stack: Stack, tmp_path: Path) -> Iterator[Cuttable]:
    with behind_cuttable_database(stack, tmp_path, "intake", "LEADFLOW_INTAKE_PORT") as intake:
        yield intake


@pytest.fixture
def feedback_with_cuttable_database(stack: Stack, tmp_path: Path) -> Iterator[Cuttable]:
    with behind_cuttable_database(stack, tmp_path, "feedback", "LEADFLOW_FEEDBACK_PORT") as fb:
        yield fb


def query(direct_url: str, sql: str) -> int:
    with psycopg.connect(direct_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def stored(direct_url: str) -> tuple[int, int]:
    return (
        query(direct_url, "SELECT count(*) FROM leads"),
        query(direct_url, "SELECT count(*) FROM events WHERE type = 'source'"),
    )


def test_intake_is_not_ready_while_the_database_is_unreachable_and_ready_again_once_it_is_back(
    intake_with_cuttable_database: Cuttable,
) -> None:
    check_unready_while_cut(
        intake_with_cuttable_database.url, intake_with_cuttable_database.proxy, "database"
    )


def delivered_lead(direct_url: str) -> str:
    """A lead of flow ``fb_free`` delivered to ``fb_buyer`` (its step takes returns), stored
    straight in the database; the id of its recipient step's event."""
    engine = make_engine(direct_url, pool_size=1)
    now = utcnow()
    lead_id, event_id = new_id(), new_id()
    try:
        with transaction(make_session_factory(engine)) as session:
            session.add(
                Lead(
                    id=lead_id,
                    flow_id="fb_free",
                    source_id="web",
                    config_version=query(direct_url, "SELECT max(id) FROM config_versions"),
                    received_at=now,
                    completed_at=now,
                    state="done",
                    outcome="success",
                    fields={"typed": {}, "extra": {}},
                    step_index=1,
                )
            )
            session.flush()
            session.add_all(
                [
                    Event(id=new_id(), lead_id=lead_id, type="source", started_at=now,
                          completed_at=now, outcome="success", steps_processed=2),
                    Event(id=event_id, lead_id=lead_id, type="recipient", step=1,
                          recipient_id="fb_buyer", started_at=now, completed_at=now,
                          outcome="success", attempts=1, ms=0),
                ]
            )  # fmt: skip
            session.flush()
            session.add(
                Delivery(event_id=event_id, lead_id=lead_id, recipient_id="fb_buyer", kind="http",
                         status="delivered", attempts=1, created_at=now, updated_at=now,
                         delivered_at=now)
            )  # fmt: skip
    finally:
        engine.dispose()
    return event_id


def feedback_recorded(direct_url: str) -> tuple[int, int, str]:
    """Feedback events, outbox rows, and the status of the one delivery."""
    return (
        query(direct_url, "SELECT count(*) FROM events WHERE type = 'feedback-received'"),
        query(direct_url, "SELECT count(*) FROM outbox"),
        {
            0: "delivered",
            1: "returned",
        }[query(direct_url, "SELECT count(*) FROM deliveries WHERE status = 'returned'")],
    )


def test_with_the_database_unreachable_feedback_answers_503_and_records_nothing_then_recovers(
    feedback_with_cuttable_database: Cuttable,
) -> None:
    feedback, proxy, direct_url = (
        feedback_with_cuttable_database.url,
        feedback_with_cuttable_database.proxy,
        feedback_with_cuttable_database.direct_url,
    )
    # given a delivered lead whose step takes returns, and a feedback service that answers
    event_id = delivered_lead(direct_url)
    assert readiness(feedback) == 200

    def post_return(accept: str = "application/json") -> requests.Response:
        return requests.post(
            f"{feedback}/feedback",
            params={"event_id": event_id},
            json={"type": "return", "reason": "Wrong number"},
            headers={"Accept": accept},
            timeout=30,
        )

    # when the database becomes unreachable and the buyer returns the lead
    proxy.cut()
    answers = [post_return() for _ in range(3)]
    as_text = post_return("text/plain")

    # then every request is refused with 503 (buyers retry) in the buyer's format
    assert [a.status_code for a in [*answers, as_text]] == [503] * 4
    assert answers[0].json() == {
        "outcome": "error",
        "reason": "Service unavailable, try again later",
    }
    assert as_text.headers["Content-Type"].startswith("text/plain")
    assert as_text.text.splitlines()[0] == "outcome: error"
    # and nothing was recorded
    assert feedback_recorded(direct_url) == (0, 0, "delivered")

    # when it is back, the service takes the return without a restart
    proxy.restore()
    response = post_return()
    assert response.status_code == 201, response.text
    assert response.json()["outcome"] == "success"
    assert feedback_recorded(direct_url)[0::2] == (1, "returned")
