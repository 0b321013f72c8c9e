"""One started stack for every end-to-end test: `leadflow up` against a real RabbitMQ vhost,
a real database and a real recipient server, as a user starts it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import sqlalchemy
import yaml

from tests.support.infra import free_port, free_port_block, own_stack_env, wait_for
from tests.support.processes import (
    service_children,
    start_process,
    stop_process,
    wait_healthy,
)
from tests.support.proxy import Proxy
from tests.support.recipient import Recipient

CONFIG_FRAGMENTS = Path(__file__).with_name("config.d")
LEADFLOW = [sys.executable, "-m", "services.cli"]


@dataclass
class Stack:
    env: dict[str, str] = field(repr=False)  # (kept out of failure reports: it is long)
    intake_url: str
    recipient: Recipient
    log_path: Path
    keep_running: list[subprocess.Popen[bytes]] = field(default_factory=list)
    up_pid: int = 0
    # Copies of `leadflow up` (e.g. "router.1") a test killed on purpose: `leadflow up`
    # then reports them and exits 1 instead of 0.
    killed: list[str] = field(default_factory=list)

    def service_pids(self, service: str) -> list[int]:
        """The copies of ``service`` that this stack's `leadflow up` started, still running."""
        return service_children(self.up_pid, service)

    @property
    def feedback_url(self) -> str:
        return f"http://127.0.0.1:{self.env['LEADFLOW_FEEDBACK_PORT']}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.env['LEADFLOW_CONSOLE_PORT']}"

    def leadflow(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LEADFLOW, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
            input=input,
        )

    def submit(
        self, flow: str, source: str = "web", data: dict[str, Any] | None = None, **kwargs: Any
    ) -> requests.Response:
        return requests.post(
            f"{self.intake_url}/flows/{flow}/sources/{source}/submit",
            data=data,
            timeout=30,
            **kwargs,
        )

    def ask_return(self, event_id: str, reason: str) -> requests.Response:
        """The buyer of the step ``event_id`` asks to return its lead, as an API client
        (JSON in, JSON answer)."""
        return requests.post(
            f"{self.feedback_url}/feedback",
            params={"event_id": event_id},
            json={"type": "return", "reason": reason},
            headers={"Accept": "application/json"},
            timeout=30,
        )

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value straight from the stack's database (for counting what was stored)."""
        engine = sqlalchemy.create_engine(self.env["LEADFLOW_DATABASE_URL"])
        try:
            with engine.connect() as connection:
                return connection.execute(sqlalchemy.text(sql), params).scalar()
        finally:
            engine.dispose()

    def execute(self, sql: str, **params: Any) -> None:
        """Change the stack's database directly (to set up a case a test cannot reach)."""
        engine = sqlalchemy.create_engine(self.env["LEADFLOW_DATABASE_URL"])
        try:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text(sql), params)
        finally:
            engine.dispose()

    def show(self, lead_id: str) -> dict[str, Any]:
        return json.loads(self.leadflow("leads", "show", lead_id, "--json").stdout)

    def wait_done(self, lead_id: str, timeout: float = 30.0) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            report = self.show(lead_id)
            return report if report["lead"]["completed_at"] else None

        return wait_for(done, timeout=timeout, interval=0.3, message=f"lead {lead_id} to finish")


def start_intake(stack: Stack, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Another `leadflow intake` beside the stack's, on a port of its own: (process, url)."""
    port = free_port()
    process = start_process(
        [sys.executable, "-m", "services.cli", "intake"],
        {**stack.env, "LEADFLOW_INTAKE_PORT": str(port)},
        log,
    )
    return process, f"http://127.0.0.1:{port}"


def merged_config() -> str:
    """Every fragment in config.d merged into one file: each test module owns its fragment
    (its own recipients and flows) and all of them run on the one shared stack.

    Tests post the same body many times on purpose, so a flow that does not say otherwise
    takes each as a new lead (``resubmit_window: 0``); the resubmission tests' flows keep
    the default window."""
    merged: dict[str, dict[str, Any]] = {"recipients": {}, "flows": {}}
    for fragment in sorted(CONFIG_FRAGMENTS.glob("*.yaml")):
        data = yaml.safe_load(fragment.read_text()) or {}
        for section in ("recipients", "flows"):
            clash = set(merged[section]) & set(data.get(section) or {})
            assert not clash, f"{fragment.name} redefines {section} {sorted(clash)}"
            merged[section].update(data.get(section) or {})
    for flow in merged["flows"].values():
        flow.setdefault("duplicates", {"resubmit_window": 0})
    return yaml.safe_dump(merged, sort_keys=False)


def start_stack(
    env: dict[str, str], recipient: Recipient, config: Path, log: Path
) -> tuple[subprocess.Popen[bytes], Stack]:
    """Apply ``config`` and start `leadflow up` with ``env``, healthy: (process, stack)."""
    subprocess.run(
        [*LEADFLOW, "config", "apply", str(config)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    process = start_process([*LEADFLOW, "up"], env, log)
    stack = Stack(
        env=env,
        intake_url=f"http://127.0.0.1:{env['LEADFLOW_INTAKE_PORT']}",
        recipient=recipient,
        log_path=log,
        up_pid=process.pid,
    )
    try:
        wait_healthy(f"{stack.intake_url}/healthz", process, log)
    except BaseException:
        stop_process(process, timeout=60)
        raise
    return process, stack


@pytest.fixture(scope="session")
def recipient() -> Iterator[Recipient]:
    server = Recipient().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack_env(
    broker_url: str,
    database_url: str,
    recipient: Recipient,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    work = tmp_path_factory.mktemp("stack")
    return {
        **os.environ,
        **own_stack_env(broker_url, database_url),
        "LEADFLOW_EMAIL_URL": f"maildir://{work}/mail",
        "LEADFLOW_OUTBOX_SWEEP_SECONDS": "1",
        "LEADFLOW_CONFIG_REFRESH_SECONDS": "0.2",
        "LEADFLOW_HTTP_CONCURRENCY": "16",
        # workers' metrics ports from a free base, not 9100 (which something else may hold)
        "LEADFLOW_METRICS_PORT": str(free_port_block(10)),
        "RECIPIENT": f"http://127.0.0.1:{recipient.port}",
        "UNREACHABLE": f"http://127.0.0.1:{free_port()}",
        "SECRET_HEADER_VALUE": "hdr-5ecret-9f3a",
        "SECRET_PASSWORD_VALUE": "pw-5ecret-7c1e",
        "SECRET_SOURCE_KEY": "src-5ecret-2b8d",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="session")
def stack(
    stack_env: dict[str, str], recipient: Recipient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("logs")
    log = logs / "leadflow-up.log"
    config = logs / "config.yaml"
    config.write_text(merged_config())
    process, stack = start_stack(stack_env, recipient, config, log)
    try:
        yield stack
    finally:
        for extra in stack.keep_running:
            stop_process(extra)
        code = stop_process(process, timeout=60)
        sys.stderr.write(f"leadflow up exited with {code}; log at {log}\n")
    # `leadflow up` stopped by SIGTERM stops every copy cleanly, says so and exits 0 (1 when
    # a test killed a copy, which it reports)
    output = log.read_text()
    assert "all services stopped" in output, output[-3000:]
    for name in stack.killed:
        assert re.search(rf"^{re.escape(name)} exited with code -9$", output, re.M), name
    assert code == (1 if stack.killed else 0), output[-3000:]


@contextlib.contextmanager
def behind_proxy(stack: Stack, tmp_path: Path, service: str) -> Iterator[tuple[str, Proxy]]:
    """A second copy of ``service`` (intake or feedback) whose RabbitMQ connection goes
    through a proxy a test can cut: its URL, and the proxy."""
    proxy = Proxy(target_port=5672).start()
    parts = urlsplit(stack.env["LEADFLOW_BROKER_URL"])
    broker = urlunsplit(parts._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}"))
    port = free_port()
    env = {
        **stack.env,
        "LEADFLOW_BROKER_URL": broker,
        f"LEADFLOW_{service.upper()}_PORT": str(port),
    }
    log = tmp_path / f"{service}.log"
    process = start_process([sys.executable, "-m", "services.cli", service], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/healthz", process, log)
    yield url, proxy
    assert stop_process(process) == 0, log.read_text()[-2000:]
    proxy.stop()
