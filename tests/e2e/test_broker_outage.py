"""With RabbitMQ unreachable, intake keeps storing and answering; leads flow once it is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Stack, behind_proxy
from tests.support.proxy import Proxy, check_unready_while_cut


@pytest.fixture
def intake_behind_proxy(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, Proxy]]:
    with behind_proxy(stack, tmp_path, "intake") as running:
        yield running


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


def test_intake_is_not_ready_while_rabbitmq_is_unreachable_and_ready_again_once_it_is_back(
    intake_behind_proxy: tuple[str, Proxy],
) -> None:
    intake_url, proxy = intake_behind_proxy
    check_unready_while_cut(intake_url, proxy, "broker")
