"""With RabbitMQ unreachable, intake keeps storing and answering; leads flow once it is back."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.e2e.conftest import Stack, start_process, stop_process, wait_healthy
from tests.support.infra import free_port, wait_for
from tests.support.proxy import Proxy


@pytest.fixture
def intake_behind_proxy(stack: Stack, tmp_path) -> Iterator[tuple[str, Proxy]]:  # type: ignore[no-untyped-def]
    proxy = Proxy(target_port=5672).start()
    parts = urlsplit(stack.env["LEADFLOW_BROKER_URL"])
    broker = urlunsplit(parts._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}"))
    port = free_port()
    env = {**stack.env, "LEADFLOW_BROKER_URL": broker, "LEADFLOW_INTAKE_PORT": str(port)}
    log = tmp_path / "intake.log"
    process = start_process([sys.executable, "-m", "services.cli", "intake"], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/healthz", process, log)
    yield url, proxy
    assert stop_process(process) == 0, log.read_text()[-2000:]
    proxy.stop()


def test_with_rabbitmq_unreachable_intake_answers_201_and_the_lead_is_delivered_once_it_is_back(
    stack: Stack, intake_behind_proxy: tuple[str, Proxy]
) -> None:
    intake_url, proxy = intake_behind_proxy
    # given an intake whose broker connection is cut
    proxy.cut()

    # when sources post leads
    lead_ids = []
    for n in range(3):
        response = requests.post(
            f"{intake_url}/flows/retries/sources/web/submit",
            data={"phone_1": f"512555000{n}"},
            timeout=30,
        )
        # then every one is stored and answered
        assert response.status_code == 201
        lead_ids.append(response.json()["lead"]["id"])

    # when the broker is reachable again
    proxy.restore()

    # then every lead is delivered
    for lead_id in lead_ids:
        report = stack.wait_done(lead_id, timeout=60)
        assert report["deliveries"][0]["status"] == "delivered"


def readiness(url: str) -> int:
    return requests.get(f"{url}/readyz", timeout=30).status_code


def test_intake_is_not_ready_while_rabbitmq_is_unreachable_and_ready_again_once_it_is_back(
    intake_behind_proxy: tuple[str, Proxy],
) -> None:
    intake_url, proxy = intake_behind_proxy
    # given a ready intake
    assert readiness(intake_url) == 200

    # when its broker connection is cut
    proxy.cut()

    # then it answers /readyz with 503, naming the broker
    wait_for(lambda: readiness(intake_url) == 503, timeout=30, message="/readyz 503")
    answer = requests.get(f"{intake_url}/readyz", timeout=30).json()
    assert answer["status"] == "unavailable"
    assert any(problem.startswith("broker") for problem in answer["problems"])

    # and once the broker is reachable again, 200
    proxy.restore()
    wait_for(lambda: readiness(intake_url) == 200, timeout=60, message="/readyz 200")
