"""A worker's metrics port: health and metrics served over HTTP, and a port already taken."""

from __future__ import annotations

import json
import logging
import socket
import urllib.request

import pytest

from shared.metrics import serve_metrics
from tests.support.infra import free_port


def test_a_worker_serves_health_and_metrics_on_its_port() -> None:
    port = free_port()
    server = serve_metrics(port)
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert json.loads(answer.read()) == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert answer.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_worker_whose_metrics_port_is_taken_warns_and_goes_on_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given the port held by another process
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]

        # when a worker wants to serve its metrics there
        with caplog.at_level(logging.WARNING):
            server = serve_metrics(port)

    # then it says so and runs without them
    assert server is None
    assert f"metrics port {port} unavailable" in caplog.text
