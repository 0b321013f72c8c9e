"""A stack of its own for each fault test (they kill processes and stop RabbitMQ), on
PostgreSQL reached through a proxy the test can cut, with a counting recipient."""

from __future__ import annotations

import mailbox
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy

from tests.support.infra import POSTGRES_URL, fresh_database, own_stack_env, rabbit_vhost, wait_for
from tests.support.processes import LEADFLOW, start_process, stop_process, wait_healthy
from tests.support.proxy import Proxy
from tests.support.recipient import Recipient

CONFIG = Path(__file__).with_name("config.yaml")


@dataclass
class FaultStack:
    env: dict[str, str]
    direct_db: str
    db_proxy: Proxy
    recipient: Recipient
    logs: Path
    processes: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    @property
    def intake_url(self) -> str:
        return f"http://127.0.0.1:{self.env['LEADFLOW_INTAKE_PORT']}"

    def start(self, service: str) -> subprocess.Popen[bytes]:
        n = sum(len(v) for v in self.processes.values())
        log = self.logs / f"{service}-{n}.log"
        process = start_process([*LEADFLOW, service], self.env, log)
        self.processes.setdefault(service, []).append(process)
        if service == "intake":
            wait_healthy(f"{self.intake_url}/healthz", process, log)
        return process

    def kill(self, service: str) -> None:
        """SIGKILL a running copy of ``service`` and every process of its pool."""
        alive = [p for p in self.processes.get(service, []) if p.poll() is None]
        victim = random.choice(alive)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()

    def scalar(self, sql: str, **params: Any) -> Any:
        engine = sqlalchemy.create_engine(self.direct_db)
        try:
            with engine.connect() as connection:
                return connection.execute(sqlalchemy.text(sql), params).scalar()
        finally:
            engine.dispose()

    def submit_many(
        self, count: int, *, rate: float | None = None, workers: int = 16
    ) -> list[requests.Response]:
        """Post ``count`` leads as a careful source does: each with an Idempotency-Key,
        sent again after a 503 until it is taken. Every answer, 503s included, in order."""
        url = f"{self.intake_url}/flows/faults/sources/web/submit"
        started = time.monotonic()
        run = secrets.token_hex(4)

        def post(n: int) -> list[requests.Response]:
            if rate is not None:
                time.sleep(max(0.0, started + n / rate - time.monotonic()))
            answers = []
            for _ in range(120):
                answer = requests.post(
                    url,
                    data={"phone_1": "5125551212", "n": str(n)},
                    headers={"Idempotency-Key": f"{run}-{n}"},
                    timeout=60,
                )
                answers.append(answer)
                if answer.status_code != 503:
                    break
                time.sleep(0.5)
            return answers

        with ThreadPoolExecutor(workers) as pool:
            return [a for answers in pool.map(post, range(count)) for a in answers]

    def counts(self, lead_ids: list[str]) -> dict[str, int]:
        """submitted, delivered (distinct leads the recipient got), duplicates (copies a
        recipient received again, told apart by Idempotency-Key), lost; then the same for
        the email recipient (messages told apart by their lead id header)."""
        received = [r.headers.get("Idempotency-Key") for r in self.recipient.requests("/count")]
        by_key = Counter(received)
        event_to_lead = dict(
            self.rows("SELECT event_id, lead_id FROM deliveries WHERE recipient_id = 'counter'")
        )
        delivered = {event_to_lead.get(k) for k in by_key} & set(lead_ids)
        mailed = Counter(
            message["X-Leadflow-Lead-Id"] for message in mailbox.Maildir(self.maildir, create=True)
        )
        return {
            "submitted": len(lead_ids),
            "delivered": len(delivered),
            "duplicates": sum(n - 1 for n in by_key.values()),
            "lost": len(set(lead_ids) - delivered),
            "emailed": len(set(mailed) & set(lead_ids)),
            "email_duplicates": sum(n - 1 for n in mailed.values()),
            "email_lost": len(set(lead_ids) - set(mailed)),
        }

    @property
    def maildir(self) -> str:
        return self.env["LEADFLOW_EMAIL_URL"].removeprefix("maildir://")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        engine = sqlalchemy.create_engine(self.direct_db)
        try:
            with engine.connect() as connection:
                return [tuple(r) for r in connection.execute(sqlalchemy.text(sql))]
        finally:
            engine.dispose()

    def wait_all_done(self, lead_ids: list[str], timeout: float) -> None:
        def done() -> bool:
            n = self.scalar("SELECT count(*) FROM leads WHERE state = 'done'")
            return int(n) >= len(lead_ids)

        wait_for(done, timeout=timeout, interval=1.0, message="every lead to finish")


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    recipient = Recipient().start()
    with rabbit_vhost() as broker, fresh_database(str(tmp_path), base=POSTGRES_URL) as direct_db:
        proxy = Proxy(target_port=5432).start()
        env = {
            **os.environ,
            **own_stack_env(broker, direct_db.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")),
            "LEADFLOW_HTTP_CONCURRENCY": "32",
            "LEADFLOW_OUTBOX_SWEEP_SECONDS": "1",
            "LEADFLOW_METRICS_PORT": "0",
            "LEADFLOW_EMAIL_URL": f"maildir://{tmp_path / 'mail'}",
            "RECIPIENT": f"http://127.0.0.1:{recipient.port}",
            "PYTHONUNBUFFERED": "1",
        }
        for args in (["db", "upgrade"], ["config", "apply", str(CONFIG)]):
            subprocess.run(
                [*LEADFLOW, *args],
                env={**env, "LEADFLOW_DATABASE_URL": direct_db},
                check=True,
                capture_output=True,
                timeout=60,
            )
        stack = FaultStack(
            env=env, direct_db=direct_db, db_proxy=proxy, recipient=recipient, logs=tmp_path
        )
        for service in ("router", "http-delivery", "email-delivery", "intake"):
            stack.start(service)
        try:
            yield stack
        finally:
            for processes in stack.processes.values():
                for process in processes:
                    stop_process(process)
            proxy.stop()
            recipient.stop()
            sys.stderr.write(f"fault stack logs in {tmp_path}\n")


def in_background(fn: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    return thread, result
