"""With the database unreachable, intake answers 503 and stores nothing half; it recovers by
itself. PostgreSQL is reached through a proxy the test cuts (SQLite is a local file and has
no outage of this kind, so this test always runs on PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from tests.e2e.conftest import (
    LEADFLOW,
    Stack,
    merged_config,
    start_process,
    stop_process,
    wait_healthy,
)
from tests.support.infra import free_port, fresh_database
from tests.support.proxy import Proxy

POSTGRES = os.environ.get(
    "LEADFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://leadflow:leadflow@127.0.0.1:5432/postgres"
)


@pytest.fixture
def intake_with_cuttable_database(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, Proxy, str]]:
    with fresh_database(str(tmp_path), base=POSTGRES) as direct_url:
        env = {**stack.env, "LEADFLOW_DATABASE_URL": direct_url}
        config = tmp_path / "config.yaml"
        config.write_text(merged_config())
        for args in (["db", "upgrade"], ["config", "apply", str(config)]):
            subprocess.run([*LEADFLOW, *args], env=env, check=True, capture_output=True, timeout=60)
        proxy = Proxy(target_port=5432).start()
        proxied = direct_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        port = free_port()
        log = tmp_path / "intake.log"
        process = start_process(
            [sys.executable, "-m", "services.cli", "intake"],
            {**env, "LEADFLOW_DATABASE_URL": proxied, "LEADFLOW_INTAKE_PORT": str(port)},
            log,
        )
        intake = f"http://127.0.0.1:{port}"
        wait_healthy(f"{intake}/healthz", process, log)
        try:
            yield intake, proxy, direct_url
        finally:
            assert stop_process(process) == 0, log.read_text()[-2000:]
            proxy.stop()


def stored(direct_url: str) -> tuple[int, int]:
    with psycopg.connect(direct_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        leads = conn.execute("SELECT count(*) FROM leads").fetchone()
        events = conn.execute("SELECT count(*) FROM events WHERE type = 'source'").fetchone()
    assert leads is not None and events is not None
    return int(leads[0]), int(events[0])


def test_with_the_database_unreachable_intake_answers_503_and_stores_nothing_then_recovers(
    intake_with_cuttable_database: tuple[str, Proxy, str],
) -> None:
    intake, proxy, direct_url = intake_with_cuttable_database
    submit = f"{intake}/flows/intake_json/sources/open/submit"
    lead = {"phone_1": "5125551212", "state": "TX"}
    # given a working intake
    assert requests.post(submit, data=lead, timeout=30).status_code == 201

    # when the database becomes unreachable
    proxy.cut()
    answers = [requests.post(submit, data=lead, timeout=30) for _ in range(5)]

    # then every submission is refused with 503 (sources retry) in the client's format
    assert [a.status_code for a in answers] == [503] * 5
    assert answers[0].json()["outcome"] == "error"
    assert stored(direct_url) == (1, 1)

    # when it is back, intake recovers without a restart and nothing was half-stored
    proxy.restore()
    assert requests.post(submit, data=lead, timeout=30).status_code == 201
    assert stored(direct_url) == (2, 2)
