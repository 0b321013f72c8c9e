"""`leadflow up` as a terminal user runs it: Ctrl-C stops every service quietly, and no
service outlives it however it ends; a worker stops on SIGTERM within its grace whatever
happened to its broker and its output.

Each test runs its own `leadflow up` (or worker) on a vhost and database of its own, so
killing it or deleting its vhost leaves the shared stack alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.db.migrate import upgrade
from tests.support.infra import (
    free_port_block,
    fresh_database,
    own_stack_env,
    rabbit_vhost,
    rabbitmqctl,
    wait_for,
)
from tests.support.processes import LEADFLOW, service_children, wait_healthy

CONFIG = """
recipients:
  up_buyer:
    http: {url: "${RECIPIENT}/up-buyer"}
flows:
  up_flow:
    response: {mode: on_receipt}
    sources: {web: {}}
    steps: [{recipient: up_buyer}]
"""
SERVICES = ("intake", "router", "http-delivery", "email-delivery", "feedback", "console")
GRACE_SECONDS = 5


@dataclass
class Own:
    env: dict[str, str]
    vhost: str

    @property
    def intake_url(self) -> str:
        return f"http://127.0.0.1:{self.env['LEADFLOW_INTAKE_PORT']}"


@pytest.fixture
def own(tmp_path: Path, recipient_url: str) -> Iterator[Own]:
    """A vhost, a database and ports of its own, with the flows applied."""
    with rabbit_vhost() as broker_url, fresh_database(str(tmp_path)) as database_url:
        upgrade(database_url)
        env = {
            **os.environ,
            **own_stack_env(broker_url, database_url),
            "LEADFLOW_EMAIL_URL": f"maildir://{tmp_path}/mail",
            "LEADFLOW_METRICS_PORT": str(free_port_block(6)),
            "LEADFLOW_SHUTDOWN_GRACE": str(GRACE_SECONDS),
            "RECIPIENT": recipient_url,
            "PYTHONUNBUFFERED": "1",
        }
        config = tmp_path / "flows.yaml"
        config.write_text(CONFIG)
        subprocess.run(
            [*LEADFLOW, "config", "apply", str(config)], env=env, check=True, capture_output=True
        )
        yield Own(env, broker_url.rsplit("/", 1)[1].replace("%2F", "/"))


@pytest.fixture
def recipient_url(stack_env: dict[str, str]) -> str:
    return stack_env["RECIPIENT"]


def start_up(own: Own, log: Path) -> subprocess.Popen[bytes]:
    """`leadflow up` in a process group of its own, as a terminal's foreground job."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [*LEADFLOW, "up"],
            env=own.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def alive(pids: list[int]) -> list[int]:
    living = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    continue  # a zombie has exited
        except FileNotFoundError:
            continue
        living.append(pid)
    return living


def all_ready(log: Path) -> bool:
    text = log.read_text()
    return text.count("ready for action") >= 3 and text.count("listening on") >= 3


def wait_every_service_ready(own: Own, up: subprocess.Popen[bytes], log: Path) -> None:
    wait_healthy(f"{own.intake_url}/healthz", up, log)
    try:
        # (generous: on a loaded CI machine a worker has once taken over a minute)
        wait_for(lambda: up.poll() is not None or all_ready(log), timeout=120, message="ready")
        assert up.poll() is None, "leadflow up exited"
    except AssertionError as error:
        raise AssertionError(f"{error}; its output:\n{log.read_text()[-4000:]}") from None


def test_ctrl_c_on_leadflow_up_stops_every_service_quietly(own: Own, tmp_path: Path) -> None:
    # given `leadflow up` that has run for a while and routed leads
    log = tmp_path / "up.log"
    up = start_up(own, log)
    try:
        wait_every_service_ready(own, up, log)
        for _ in range(5):
            answer = requests.post(f"{own.intake_url}/flows/up_flow/sources/web/submit", timeout=10)
            assert answer.status_code == 201
        time.sleep(1.0)

        # when the terminal's Ctrl-C reaches the whole foreground process group
        os.killpg(up.pid, signal.SIGINT)
        code = up.wait(timeout=60)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()

    # then every service said once that it stopped, nothing else went wrong, and it exits 0
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "all services stopped" in output
    assert "Traceback" not in output, output
    assert " ERROR " not in output and " WARNING " not in output, output
    for service in SERVICES:
        stopped = [line for line in output.splitlines() if line.startswith(f"{service}.1 ")]
        assert sum(" stopped" in line for line in stopped) == 1, (service, stopped)


def test_no_service_outlives_a_leadflow_up_killed_with_sigkill(own: Own, tmp_path: Path) -> None:
    # given `leadflow up` running every service
    log = tmp_path / "up.log"
    up = start_up(own, log)
    try:
        wait_every_service_ready(own, up, log)
        services = service_children(up.pid)
        assert len(services) == len(SERVICES)

        # when it is killed with SIGKILL and its vhost then deleted
        os.kill(up.pid, signal.SIGKILL)
        up.wait()
        rabbitmqctl("delete_vhost", own.vhost)

        # then every service it started is gone within its shutdown grace
        wait_for(
            lambda: not alive(services),
            timeout=GRACE_SECONDS + 15,
            message=f"no orphan left of {services}",
        )
    finally:
        for pid in alive(service_children(up.pid)):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("service", ["router", "http-delivery", "email-delivery"])
def test_a_worker_stops_on_sigterm_after_losing_its_output_and_its_vhost(
    own: Own, service: str
) -> None:
    # given a worker whose output pipe lost its reader and whose vhost was deleted
    worker = subprocess.Popen(
        [*LEADFLOW, service],
        env=own.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert worker.stdout is not None
        seen = b""
        while b"ready for action" not in seen:
            line = worker.stdout.readline()
            assert line, seen.decode()
            seen += line
        worker.stdout.close()
        rabbitmqctl("delete_vhost", own.vhost)
        time.sleep(3)  # (it logs its reconnection failures into the broken pipe meanwhile)

        # when it gets SIGTERM
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)

        # then it exits within its grace
        worker.wait(timeout=GRACE_SECONDS + 10)
        assert time.monotonic() - started < GRACE_SECONDS + 10
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def test_a_worker_started_with_processes_runs_that_many_copies_and_stops_them_all(
    own: Own, tmp_path: Path
) -> None:
    # given `leadflow http-delivery --processes 2 --threads 8`
    log = tmp_path / "pool.log"
    with log.open("ab") as handle:
        pool = subprocess.Popen(
            [*LEADFLOW, "http-delivery", "--processes", "2", "--threads", "8"],
            env=own.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    # then two copies consume the queue, each with a window of 8 messages
    wait_for(lambda: log.read_text().count("ready for action") >= 2, timeout=60, message="copies")
    assert "http-delivery.1" in log.read_text() and "http-delivery.2" in log.read_text()
    consumers = rabbitmqctl(
        "list_consumers", "-p", own.vhost, "queue_name", "prefetch_count", "--no-table-headers"
    ).split("\n")
    windows = [line.split()[1] for line in consumers if line.startswith("http_delivery\t")]
    assert windows == ["8", "8"], consumers

    # when it is stopped, every copy stops and it exits 0
    os.killpg(pool.pid, signal.SIGTERM)
    assert pool.wait(timeout=60) == 0, log.read_text()[-2000:]
