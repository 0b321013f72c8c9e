"""Health and metrics on every service of the running stack; JSON log lines."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack
from tests.support.infra import free_port, wait_for
from tests.support.processes import start_process, stop_process, wait_healthy
from tests.support.recipient import Reply


def worker_metrics_ports(stack: Stack) -> dict[str, int]:
    """`leadflow up` prints the metrics port it gave each worker copy."""
    found = re.findall(r"started (\S+) \(pid \d+, metrics on :(\d+)\)", stack.log_path.read_text())
    return {name: int(port) for name, port in found}


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = requests.get(url, timeout=10).text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
    return sum(
        value
        for sample, sample_labels, value in samples
        if sample == name and labels.items() <= sample_labels.items()
    )


def test_every_worker_serves_health_and_its_pools_metrics_on_its_own_port(stack: Stack) -> None:
    ports = worker_metrics_ports(stack)
    assert {"router.1", "http-delivery.1", "email-delivery.1"} <= set(ports)
    # given some traffic through the flow
    assert stack.submit("spine", data={"phone_1": "5125550142"}).status_code == 201
    for name, port in ports.items():
        if name not in ("router.1", "http-delivery.1", "email-delivery.1"):
            continue
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "leadflow_queue_messages" in text, name
    http_metrics = requests.get(
        f"http://127.0.0.1:{ports['http-delivery.1']}/metrics", timeout=10
    ).text
    assert re.search(r'leadflow_deliveries_total\{[^}]*recipient="acme"', http_metrics)
    assert "leadflow_delivery_attempt_seconds_bucket" in http_metrics
    router_metrics = requests.get(f"http://127.0.0.1:{ports['router.1']}/metrics", timeout=10).text
    assert "leadflow_flows_completed_total" in router_metrics


def test_intake_is_ready_and_counts_leads_by_flow_source_and_the_outcome_answered(
    stack: Stack,
) -> None:
    assert requests.get(f"{stack.intake_url}/readyz", timeout=10).json()["status"] == "ok"
    stack.submit("spine", data={"first_name": "x"})  # fails: phone_1 is required
    queued = stack.submit("retries", data={"phone_1": "5125550100"}).json()["outcome"]
    text = requests.get(f"{stack.intake_url}/metrics", timeout=10).text
    for flow, outcome in (("spine", "failure"), ("retries", queued)):
        assert re.search(
            rf'leadflow_leads_received_total\{{flow="{flow}",outcome="{outcome}",'
            r'source="web"\} [1-9]',
            text,
        ), (flow, outcome, text[:2000])
    assert queued == "queued"
    assert "leadflow_outbox_depth" in text


def test_with_json_logs_each_line_is_an_object_naming_the_lead(
    stack: Stack, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "intake.log"
    env = {**stack.env, "LEADFLOW_INTAKE_PORT": str(port), "LEADFLOW_LOG_FORMAT": "json"}
    process = start_process([sys.executable, "-m", "services.cli", "intake"], env, log)
    wait_healthy(f"http://127.0.0.1:{port}/healthz", process, log)
    lead_id = requests.post(
        f"http://127.0.0.1:{port}/flows/spine/sources/web/submit",
        data={"phone_1": "5125550143"},
        timeout=10,
    ).json()["lead"]["id"]
    wait_for(lambda: lead_id in log.read_text(), timeout=10, message="the lead's log line")
    assert stop_process(process) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("lead_id") == lead_id]
    assert mine and {"ts", "level", "service", "msg", "lead_id", "event_id"} <= set(mine[0])
    assert mine[0]["service"] == "intake"


def test_a_worker_whose_metrics_port_is_taken_says_so_in_a_json_line_and_keeps_working(
    stack: Stack, tmp_path: Path
) -> None:
    # given JSON logs and a metrics port another process holds
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        log = tmp_path / "router.log"
        env = {
            **stack.env,
            "LEADFLOW_LOG_FORMAT": "json",
            "LEADFLOW_METRICS_PORT": str(port),
        }

        # when a router starts
        process = start_process([sys.executable, "-m", "services.cli", "router"], env, log)
        try:
            wait_for(lambda: "unavailable" in log.read_text(), timeout=30, message="the warning")
            alive = process.poll() is None
        finally:
            stopped = stop_process(process)

    # then every line it wrote is a JSON object, the warning among them, and it ran on
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    warning = next(line for line in lines if "unavailable" in line["msg"])
    assert (warning["level"], warning["service"]) == ("warning", "router")
    assert alive and stopped == 0


def test_http_delivery_counts_retries_dead_letters_and_deliveries_by_outcome(stack: Stack) -> None:
    metrics = f"http://127.0.0.1:{worker_metrics_ports(stack)['http-delivery.1']}/metrics"
    counted = {
        "retries": ("leadflow_retries_total", {"queue": "http_delivery"}),
        "dead letters": ("leadflow_dead_letters_total", {"queue": "http_delivery"}),
        "flaky success": (
            "leadflow_deliveries_total",
            {"recipient": "flaky", "outcome": "success"},
        ),
        "unreachable error": (
            "leadflow_deliveries_total",
            {"recipient": "unreachable", "outcome": "error"},
        ),
    }
    before = scrape(metrics)
    # given a recipient down for two attempts and one nobody listens for (one retry, then
    # the dead-letter queue)
    stack.recipient.script("/flaky", [Reply(503, "busy"), Reply(503, "busy"), Reply(200, "ok")])
    retried = stack.submit("retries", data={"phone_1": "5125550144"}).json()["lead"]["id"]
    parked = stack.submit("gone", data={"phone_1": "5125550145"}).json()["lead"]["id"]

    # when both leads have been through their deliveries
    assert stack.wait_done(retried)["deliveries"][0]["status"] == "delivered"
    assert stack.wait_done(parked)["deliveries"][0]["dead_lettered"] is True

    # then http-delivery's metrics count the three retries, the dead letter and each outcome
    expected = {"retries": 3, "dead letters": 1, "flaky success": 1, "unreachable error": 1}

    def increases() -> dict[str, float]:
        after = scrape(metrics)
        return {
            key: total(after, name, **labels) - total(before, name, **labels)
            for key, (name, labels) in counted.items()
        }

    seen: dict[str, float] = {}

    def increased() -> bool:
        seen.update(increases())
        return all(seen[key] >= n for key, n in expected.items())

    wait_for(increased, timeout=10, message=f"increases of at least {expected}")


def test_feedback_counts_feedback_by_type_and_outcome(stack: Stack) -> None:
    metrics = f"{stack.feedback_url}/metrics"
    returns = ("leadflow_feedback_total", {"type": "return", "outcome": "success"})
    before = total(scrape(metrics), returns[0], **returns[1])
    # given a delivered lead whose step takes returns
    stack.recipient.script("/fb-buyer", [Reply(200, '{"outcome": "success"}')])
    answer = stack.submit("fb_free", data={"first_name": "Ann", "phone_1": "5125550146"}).json()
    assert answer["outcome"] == "success"
    (step,) = [e for e in stack.show(answer["lead"]["id"])["events"] if e["type"] == "recipient"]

    # when the buyer returns it
    response = requests.post(
        f"{stack.feedback_url}/feedback",
        params={"event_id": step["id"]},
        json={"type": "return", "reason": "Wrong number"},
        timeout=10,
    )
    assert response.status_code == 201, response.text

    # then feedback's metrics count one accepted return more
    assert total(scrape(metrics), returns[0], **returns[1]) == before + 1
