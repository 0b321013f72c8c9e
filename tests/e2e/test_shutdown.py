"""SIGTERM: a service stops taking work, finishes or returns what it holds, and exits 0."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, start_intake, start_process, stop_process, wait_healthy
from tests.support.infra import free_port, wait_for
from tests.support.recipient import Reply


def test_a_delivery_worker_stopped_mid_request_finishes_it_and_exits_0(
    stack: Stack, tmp_path: Path
) -> None:
    # given a delivery in flight to a recipient answering in two seconds
    stack.recipient.script("/shutdown-slow", [Reply(200, "{}", delay=2.0)])
    lead_id = stack.submit("shutdown").json()["lead"]["id"]
    wait_for(
        lambda: any(lead_id in r.body.decode() for r in stack.recipient.requests("/shutdown-slow")),
        timeout=20,
        message="the request to be in flight",
    )

    # when the stack's http-delivery gets SIGTERM (its main process, as an orchestrator does)
    (pid,) = stack.service_pids("http-delivery")
    os.kill(pid, signal.SIGTERM)
    wait_for(
        lambda: "http-delivery.1 exited with code 0" in stack.log_path.read_text(),
        timeout=40,
        message="http-delivery to exit 0",
    )
    # (another one takes over the stack's remaining work, on the same metrics port)
    port = re.search(
        r"started http-delivery\.1 \(pid \d+, metrics on :(\d+)\)", stack.log_path.read_text()
    )
    env = {**stack.env, **({"LEADFLOW_METRICS_PORT": port.group(1)} if port else {})}
    stack.keep_running.append(
        start_process(
            [sys.executable, "-m", "services.cli", "http-delivery"],
            env,
            tmp_path / "http-delivery.log",
        )
    )

    # then the request it held was finished and recorded, and sent only once
    report = stack.wait_done(lead_id)
    assert report["deliveries"][0]["status"] == "delivered"
    assert len(report["deliveries"][0]["attempts"]) == 1
    assert sum(lead_id in r.body.decode() for r in stack.recipient.requests("/shutdown-slow")) == 1


@pytest.mark.parametrize("service", ["router", "http-delivery", "email-delivery"])
def test_an_idle_worker_stopped_by_sigterm_exits_0(
    stack: Stack, tmp_path: Path, service: str
) -> None:
    log = tmp_path / f"{service}.log"
    process = start_process([sys.executable, "-m", "services.cli", service], stack.env, log)
    wait_for(lambda: "ready for action" in log.read_text(), timeout=30, message="worker ready")
    assert stop_process(process, timeout=40) == 0, log.read_text()[-2000:]


def test_intake_stopped_by_sigterm_exits_0(stack: Stack, tmp_path: Path) -> None:
    log = tmp_path / "intake.log"
    process, url = start_intake(stack, log)
    wait_healthy(f"{url}/healthz", process, log)
    assert stack.submit("shutdown").status_code == 201
    assert stop_process(process, timeout=30) == 0, log.read_text()[-2000:]


def test_intake_stopped_by_sigterm_while_it_starts_exits_0(stack: Stack, tmp_path: Path) -> None:
    # given an intake starting while RabbitMQ cannot be reached (it waits for it a while)
    log = tmp_path / "intake.log"
    env = {
        **stack.env,
        "LEADFLOW_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F",
        "LEADFLOW_INTAKE_PORT": str(free_port()),
    }
    process = start_process([sys.executable, "-m", "services.cli", "intake"], env, log)
    wait_for(lambda: "broker unreachable" in log.read_text(), timeout=30, message="starting")

    # when it is stopped before it listens, then it stops cleanly
    assert stop_process(process, timeout=30) == 0, log.read_text()[-2000:]
