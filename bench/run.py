"""`make bench`: the real stack on this machine, each figure beside a baseline measured in
the same run, medians of three runs with their spread. Prints one table and writes
bench/RESULTS.md. Set BENCH_RUNS (default 3) to change the repetitions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import psycopg
import requests
import yaml

from bench import console as bench_console
from bench import pika_chain
from bench import pings as bench_pings
from bench import reports as bench_reports
from tests.support.infra import wait_for

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
# 10,000 leads through a down recipient take minutes here: once by default.
RECOVERY_RUNS = int(os.environ.get("BENCH_RECOVERY_RUNS", "1"))
PG_BASE = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://leadflow:leadflow@127.0.0.1:5432/postgres"
)
PY = sys.executable
#: What to measure (a subset, for a quick look while working): BENCH_ONLY="chain,e2e",
#: BENCH_DBS="postgresql".
ONLY = set(
    os.environ.get(
        "BENCH_ONLY", "hello,chain,intake,e2e,dups,caps,latency,ping,slow,recovery,report"
    ).split(",")
)
DBS = os.environ.get("BENCH_DBS", "postgresql,sqlite").split(",")
#: The phases that run on the stack (one per database), and those among them that measure
#: with every service up from the start (the slow and recovery phases start their own).
STACK_PHASES = {"intake", "e2e", "dups", "caps", "latency", "ping", "slow", "recovery"}
FULL_STACK_PHASES = {"e2e", "dups", "caps", "latency", "ping"}
#: The paced latency run (half of the end-to-end rate), long enough to catch outliers.
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "60"))
#: Connections posting leads in an end-to-end run: as many as for the intake figure (16
#: left intake waiting on its own commit: ~750 leads/s where 64 give ~1,150, same code).
E2E_CONNECTIONS = int(os.environ.get("BENCH_E2E_CONNECTIONS", "64"))
#: Seconds of submissions per end-to-end run (the leads then drain through the stack).
E2E_SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "5"))
LEAD_BODY = "phone_1=5125551212&first_name=Ann&state=TX"
#: A row of the table: figure, median, spread, baseline, ratio or target.
Row = tuple[str, str, str, str, str]

CONFIG = """
recipients:
  fast:
    http:
      url: http://127.0.0.1:{fast}/leads
      fields: {{lead_id: "{{{{lead.id}}}}", phone: "{{{{lead.phone_1}}}}"}}
      retry: {{schedule: [5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s]}}
  fast_once:
    duplicates: {{keys: [[email]], lookback: 90d}}
    http:
      url: http://127.0.0.1:{fast}/leads
      fields: {{lead_id: "{{{{lead.id}}}}", phone: "{{{{lead.phone_1}}}}"}}
      retry: {{schedule: [5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s]}}
  fast_capped:
    timezone: America/New_York
    caps: [{{max: 1000000000, per: day}}, {{max: 1000000000, per: hour}}]
    http:
      url: http://127.0.0.1:{fast}/leads
      fields: {{lead_id: "{{{{lead.id}}}}", phone: "{{{{lead.phone_1}}}}"}}
      retry: {{schedule: [5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s, 5s]}}
  slow:
    http:
      url: http://127.0.0.1:{slow}/leads
      fields: {{lead_id: "{{{{lead.id}}}}"}}
      timeout: 30s
flows:
  fast:
    fields: {{phone_1: {{type: phone}}, first_name: {{type: first_name}}, state: {{type: state}}}}
    response: {{mode: on_receipt}}
    sources: {{web: {{}}}}
    steps: [{{recipient: fast}}]
  fast_dups:
    fields: {{phone_1: {{type: phone}}, first_name: {{type: first_name}}, state: {{type: state}},
              email: {{type: email}}}}
    response: {{mode: on_receipt}}
    duplicates: {{keys: [[email], [first_name, state, email]], lookback: 30d}}
    sources: {{web: {{}}}}
    steps: [{{recipient: fast_once}}]
  fast_email:
    fields: {{phone_1: {{type: phone}}, first_name: {{type: first_name}}, state: {{type: state}},
              email: {{type: email}}}}
    response: {{mode: on_receipt}}
    sources: {{web: {{}}}}
    steps: [{{recipient: fast}}]
  fast_caps:
    fields: {{phone_1: {{type: phone}}, first_name: {{type: first_name}}, state: {{type: state}}}}
    response: {{mode: on_receipt}}
    timezone: America/Chicago
    caps: [{{max: 1000000000, per: day}}]
    sources: {{web: {{caps: [{{max: 1000000000, per: month}}]}}}}
    steps: [{{recipient: fast_capped}}]
  slow:
    fields: {{phone_1: {{type: phone}}}}
    response: {{mode: on_receipt}}
    sources: {{web: {{}}}}
    steps: [{{recipient: slow}}]
"""


# --- small tools ----------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    return wait_for(condition, timeout, interval, what)


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 400
    except requests.RequestException:
        return False


@dataclass
class Figure:
    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def spread(self) -> str:
        if len(self.values) < 2:
            return "-"
        return f"{min(self.values):,.0f}-{max(self.values):,.0f}"


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in list(reversed(self.running)):
            self.stop(process)


def process_family(pid: int) -> tuple[set[int], dict[int, int]]:
    """``pid`` with its children, theirs and so on; and every process's resident memory
    (KiB), as ps lists them now."""
    out = subprocess.run(["ps", "-o", "pid=,ppid=,rss=", "-e"], capture_output=True, text=True)
    rows = [tuple(int(x) for x in line.split()) for line in out.stdout.splitlines()]
    family, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid, _rss in rows:
            if ppid == parent and child not in family:
                family.add(child)
                frontier.append(child)
    return family, {child: rss for child, _ppid, rss in rows}


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (a dramatiq pool forks workers)."""
    family, rss = process_family(pid)
    return sum(rss.get(child, 0) for child in family) / 1024


def peak_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def count_processes(pid: int) -> int:
    return len(process_family(pid)[0])


# --- load generators ------------------------------------------------------------------------


def run_wrk(script: str, url: str, seconds: int, connections: int) -> str:
    """wrk's report of ``seconds`` of requests to ``url`` made by the Lua ``script`` (one
    thread: the server gets the other core)."""
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text(script)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(path), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path.unlink()
    return out


def wrk(url: str, seconds: int, body: str, connections: int = 64) -> float:
    """Requests per second answered 2xx, from wrk."""
    script = (
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )
    out = run_wrk(script, url, seconds, connections)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if bad or errors:
        total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        failed = int(bad.group(1)) if bad else 0
        rate *= max(0.0, 1 - failed / total)
    return rate


UNIQUE_LEADS_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, "%s&n=%s-" .. n .. "&email=lead" .. n .. "-%s@bench.example")
end
done = function(summary, latency, requests)
  io.write(string.format("ACCEPTED %%d\\n", summary.requests - summary.errors.status))
end
"""


def wrk_leads(url: str, seconds: float, connections: int = 32) -> tuple[float, int]:
    """Leads posted for ``seconds`` as fast as they are taken, each body different (a copy
    of an earlier body would be a resubmission): (201s per second, how many)."""
    run = secrets.token_hex(4)
    out = run_wrk(UNIQUE_LEADS_LUA % (LEAD_BODY, run, run), url, round(seconds), connections)
    accepted = int(re.search(r"ACCEPTED (\d+)", out).group(1))  # type: ignore[union-attr]
    return accepted / seconds, accepted


async def _post_leads(url: str, count: int, concurrency: int) -> None:
    run = secrets.token_hex(4)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def client() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                body = f"{LEAD_BODY}&n={run}-{n}"
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 201:
                        raise RuntimeError(f"intake answered {response.status}")

        await asyncio.gather(*(client() for _ in range(concurrency)))


def post_leads(url: str, count: int, concurrency: int = 32) -> None:
    """Post ``count`` different leads as fast as they are taken."""
    asyncio.run(_post_leads(url, count, concurrency))


async def paced(url: str, rate: float, seconds: float) -> tuple[dict[str, float], list[float]]:
    """Submit at a steady rate; return each lead id with the time its submission started,
    and how long each answer took (ms)."""
    sent: dict[str, float] = {}
    answers: list[float] = []
    interval = 1.0 / rate
    connector = aiohttp.TCPConnector(limit=256)
    run = secrets.token_hex(4)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> None:
            started = time.time()
            async with session.post(
                url,
                data=f"{LEAD_BODY}&n={run}-{n}",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ) as response:
                body = await response.json()
                answers.append((time.time() - started) * 1000)
                sent[body["lead"]["id"]] = started

        tasks = []
        begin = time.monotonic()
        n = 0
        while time.monotonic() - begin < seconds:
            tasks.append(asyncio.create_task(one(n)))
            n += 1
            await asyncio.sleep(max(0.0, begin + n * interval - time.monotonic()))
        await asyncio.gather(*tasks)
    return sent, answers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    procs: Processes
    fast_port: int
    slow_port: int
    bidders_port: int = 0
    intake_url: str = ""
    services: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    def http_url(self, service: str) -> str | None:
        """Where an HTTP service of the stack answers (None: a worker)."""
        variable = {
            "intake": "LEADFLOW_INTAKE_PORT",
            "feedback": "LEADFLOW_FEEDBACK_PORT",
            "console": "LEADFLOW_CONSOLE_PORT",
        }.get(service)
        return f"http://127.0.0.1:{self.env[variable]}" if variable else None

    def leadflow(self, *args: str) -> str:
        return subprocess.run(
            [PY, "-m", "services.cli", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def start(self, service: str, **extra_env: str) -> subprocess.Popen[bytes]:
        env = {**self.env, **extra_env}
        n = len(self.services.get(service, []))
        process = self.procs.start(f"{service}-{n}", [PY, "-m", "services.cli", service], env)
        self.services.setdefault(service, []).append(process)
        url = self.http_url(service)
        if url is not None:
            wait_until(lambda: http_ok(f"{url}/readyz"), 60, f"{service} ready")
        return process

    def stop(self, service: str) -> None:
        for process in self.services.pop(service, []):
            self.procs.stop(process)

    def stop_all(self) -> None:
        for service in list(self.services):
            self.stop(service)

    def submit_url(self, flow: str) -> str:
        return f"{self.intake_url}/flows/{flow}/sources/web/submit"


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    name = f"leadflow-bench-{secrets.token_hex(3)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], check=True
    )
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{quote(name, safe='')}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False)


#: The databases a run can measure (BENCH_DBS), as each row names them.
KINDS = ("postgresql", "sqlite")
DB_SUFFIX = re.compile(r" \((?:" + "|".join(KINDS) + r")\)$")


@contextlib.contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    """A fresh, empty database of ``kind`` (an SQLite file under ``work``), dropped after."""
    if kind == "sqlite":
        path = work / f"bench-{secrets.token_hex(3)}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"leadflow_bench_{secrets.token_hex(3)}"
    libpq = PG_BASE.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_BASE.rsplit("/", 1)[0] + f"/{name}"
    finally:
        for attempt in range(5):
            try:
                with psycopg.connect(libpq, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.errors.InsufficientPrivilege:
                # a backend PostgreSQL runs there itself (autovacuum) cannot be ended by
                # this role: a moment later it is gone
                if attempt == 4:
                    raise
                time.sleep(1)


@contextlib.contextmanager
def stack(kind: str, work: Path, procs: Processes) -> Iterator[Stack]:
    fast, slow, bidders = free_port(), free_port(), free_port()
    with vhost() as broker, database(kind, work) as db:
        env = {
            **os.environ,
            "LEADFLOW_BROKER_URL": broker,
            "LEADFLOW_DATABASE_URL": db,
            "LEADFLOW_INTAKE_PORT": str(free_port()),
            "LEADFLOW_FEEDBACK_PORT": str(free_port()),
            "LEADFLOW_FEEDBACK_HOST": "127.0.0.1",
            "LEADFLOW_CONSOLE_PORT": str(free_port()),
            "LEADFLOW_CONSOLE_HOST": "127.0.0.1",
            # the email worker runs as in production; nothing here sends mail
            "LEADFLOW_EMAIL_URL": f"maildir://{work / f'mail-{kind}'}",
            "LEADFLOW_LOG_LEVEL": "WARNING",
            "LEADFLOW_METRICS_PORT": "0",
            "PYTHONPATH": str(ROOT),
        }
        s = Stack(
            env=env,
            procs=procs,
            fast_port=fast,
            slow_port=slow,
            bidders_port=bidders,
            intake_url=f"http://127.0.0.1:{env['LEADFLOW_INTAKE_PORT']}",
        )
        config = work / "bench.yaml"
        document = yaml.safe_load(CONFIG.format(fast=fast, slow=slow))
        auction = bench_pings.config(fast, bidders)
        document["recipients"].update(auction["recipients"])
        document["flows"].update(auction["flows"])
        config.write_text(yaml.safe_dump(document))
        s.leadflow("db", "upgrade")
        s.leadflow("config", "apply", str(config))
        try:
            yield s
        finally:
            s.stop_all()


def start_recipient(procs: Processes, port: int, delay: float) -> subprocess.Popen[bytes]:
    process = procs.start(
        f"recipient-{port}",
        [PY, "-m", "bench.recipient", str(port), str(delay)],
        {**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/stats"), 30, "recipient")
    return process


def received(port: int) -> int:
    return int(requests.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()["count"])


def delivered_once(port: int, expected: int, phase: str) -> None:
    """The correctness check of every phase: at least ``expected`` leads arrived (the
    load generator may stop before it reads the answer of a lead that was stored), and
    none arrived twice."""
    stats = requests.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()
    if stats["count"] < expected or stats["requests"] != stats["count"]:
        raise RuntimeError(
            f"{phase}: {max(0, expected - stats['count'])} leads missing, "
            f"{stats['requests'] - stats['count']} deliveries of a lead already delivered"
        )


def reset(port: int) -> None:
    requests.post(f"http://127.0.0.1:{port}/reset", timeout=10)


# --- the figures ----------------------------------------------------------------------------


def intake_rate(s: Stack) -> float:
    """One intake process, router and delivery stopped, its outbox publisher running."""
    s.stop_all()
    s.start("intake")
    wrk_leads(s.submit_url("fast"), 2)  # warm up
    rate, _ = wrk_leads(s.submit_url("fast"), 8, connections=64)
    s.stop("intake")
    # Those leads stay stored; their messages must not flood the end-to-end figures.
    vhost = unquote(s.env["LEADFLOW_BROKER_URL"].rsplit("/", 1)[1])
    subprocess.run(["rabbitmqctl", "-q", "purge_queue", "-p", vhost, "router"], check=True)
    return rate


def hello_rate(procs: Processes) -> float:
    port = free_port()
    process = procs.start(
        "hello", [PY, "-m", "bench.hello", str(port)], {**os.environ, "PYTHONPATH": str(ROOT)}
    )
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/"), 30, "hello")
    wrk(f"http://127.0.0.1:{port}/", 2, LEAD_BODY)
    rate = wrk(f"http://127.0.0.1:{port}/", 8, LEAD_BODY)
    procs.stop(process)
    return rate


#: Every service of `leadflow up` but intake and http-delivery (started by ``full_stack``
#: with them), and the queue each worker among them consumes.
OTHER_SERVICES = ("router", "email-delivery", "feedback", "console")
CONSUMED = {"router": "router", "email-delivery": "email_delivery", "feedback": "feedback"}


def full_stack(s: Stack, http_commands: int = 1) -> None:
    """One copy of every service (``http_commands`` of http-delivery), as `leadflow up`
    runs them: each HTTP service ready, each worker consuming."""
    s.stop_all()
    for service in OTHER_SERVICES:
        s.start(service)
    for _ in range(http_commands):
        s.start("http-delivery")
    s.start("intake")
    wanted = dict.fromkeys(CONSUMED.values(), 1)
    wanted["http_delivery"] = http_commands

    def consuming() -> bool:
        consumers = queue_stats(s, "consumers")
        return all(consumers.get(q, 0) >= n for q, n in wanted.items())

    wait_until(consuming, 60, "workers consuming")


def queue_stats(s: Stack, column: str) -> dict[str, int]:
    """One column of `rabbitmqctl list_queues` (messages, consumers) for each queue of the
    stack."""
    vhost = unquote(s.env["LEADFLOW_BROKER_URL"].rsplit("/", 1)[1])
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", column, "--no-table-headers"],
        capture_output=True,
        text=True,
    ).stdout
    parts = [line.split() for line in out.splitlines()]
    return {p[0]: int(p[1]) for p in parts if len(p) == 2 and p[1].isdigit()}


def queue_stat(s: Stack, queue: str, column: str) -> int:
    """One column of `rabbitmqctl list_queues` for one queue of the stack (0: none yet)."""
    return queue_stats(s, column).get(queue, 0)


def end_to_end_rate(s: Stack, seconds: float, flow: str = "fast") -> float:
    """Leads per second from the first submission to the recipient's receipt of the last,
    for the leads intake took in ``seconds`` of submissions as fast as it takes them
    (each with an e-mail of its own: ``fast_dups`` checks them for duplicates, in the flow
    and for the recipient)."""
    wait_until(lambda: settled(s), 300, "the queues drained", 0.5)
    reset(s.fast_port)
    started = time.monotonic()
    _, count = wrk_leads(s.submit_url(flow), seconds, connections=E2E_CONNECTIONS)
    wait_until(lambda: received(s.fast_port) >= count, 600, "every lead delivered", 0.05)
    elapsed = time.monotonic() - started
    delivered_once(s.fast_port, count, "end to end")
    return count / elapsed


def settled(s: Stack) -> bool:
    """No backlog left from an earlier figure (the router finishes flows after receipt)."""
    return all(queue_stat(s, q, "messages") == 0 for q in ("router", "http_delivery"))


@dataclass
class Paced:
    """One paced run: submit-to-receipt latency (p50, p99, worst) and answer times."""

    p50: float
    p99: float
    worst: float
    answer_p99: float
    answer_worst: float


def latency(s: Stack, rate: float, seconds: float) -> Paced:
    wait_until(lambda: settled(s), 300, "the queues drained", 0.5)
    reset(s.fast_port)
    sent, answers = asyncio.run(paced(s.submit_url("fast"), rate, seconds))
    if not sent:
        raise RuntimeError(f"no paced submission was answered (rate {rate:.0f}/s)")
    wait_until(lambda: received(s.fast_port) >= len(sent), 120, "paced leads delivered")
    delivered_once(s.fast_port, len(sent), "latency")
    arrived = requests.get(f"http://127.0.0.1:{s.fast_port}/times", timeout=30).json()
    if set(sent) - set(arrived):
        raise RuntimeError(f"latency: {len(set(sent) - set(arrived))} answered leads missing")
    ms = [(arrived[k] - v) * 1000 for k, v in sent.items() if k in arrived]
    return Paced(
        percentile(ms, 0.5),
        percentile(ms, 0.99),
        max(ms),
        percentile(answers, 0.99),
        max(answers),
    )


def steady_rate(port: int) -> float:
    """Arrivals per second at a recipient in the steady middle of a run: from the 10th to
    the 90th percentile of arrival times."""
    arrivals = sorted(requests.get(f"http://127.0.0.1:{port}/times", timeout=30).json().values())
    lo, hi = arrivals[len(arrivals) // 10], arrivals[len(arrivals) * 9 // 10]
    return (len(arrivals) * 8 // 10) / max(hi - lo, 1e-6)


async def _client_alone(port: int, count: int, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(n: int) -> None:
            async with http.post(f"http://127.0.0.1:{port}/leads", json={"lead_id": f"c{n}"}) as r:
                await r.read()

        await asyncio.gather(*(one(n) for n in range(count)))


def client_rate(port: int, count: int, concurrency: int) -> float:
    """The baseline for a slow recipient: aiohttp's client alone, ``concurrency`` requests
    in flight (as one http-delivery holds), requests per second."""
    reset(port)
    asyncio.run(_client_alone(port, count, concurrency))
    return steady_rate(port)


def slow_rate(s: Stack, commands: int, count: int) -> tuple[float, int]:
    """Deliveries per second to a recipient answering in 1 s, for ``commands`` http-delivery
    commands; and the OS processes they run. The work queue is filled first (the pool
    stopped), so the figure is the pool's, not the router's hand-off rate."""
    # the work queue is declared by its worker: on a fresh stack one starts (and stops)
    # first, else the hand-offs are unroutable
    full_stack(s, 0 if "http_delivery" in queue_stats(s, "messages") else 1)
    s.stop("http-delivery")
    reset(s.slow_port)
    post_leads(s.submit_url("slow"), count)
    wait_until(
        lambda: queue_stat(s, "http_delivery", "messages") >= count, 900, "leads handed over", 0.5
    )
    for _ in range(commands):
        s.start("http-delivery")
    wait_until(lambda: received(s.slow_port) >= count, 900, "slow deliveries", 0.2)
    delivered_once(s.slow_port, count, "1 s recipient")
    rate = steady_rate(s.slow_port)
    processes = sum(count_processes(p.pid) for p in s.services["http-delivery"])
    return rate, processes


def recovery(s: Stack, procs: Processes, count: int) -> tuple[float, float, float]:
    """A recipient down while ``count`` leads arrive, then back: drain seconds, and the
    peak memory (MB) of the http-delivery and router pools meanwhile, before and after."""
    full_stack(s)
    recipient = [
        p
        for p in procs.running
        if isinstance(p.args, list)  # (Processes.start takes a list)
        and "bench.recipient" in p.args
        and str(s.fast_port) in p.args
    ]
    for process in recipient:
        procs.stop(process)
    workers = s.services["http-delivery"] + s.services["router"]
    baseline = sum(tree_rss_mb(p.pid) for p in workers)
    peak = baseline
    post_leads(s.submit_url("fast"), count)

    def retried() -> bool:
        nonlocal peak
        peak = max(peak, sum(tree_rss_mb(p.pid) for p in workers))
        return attempted(s) >= count

    wait_until(retried, 900, "every lead to fail once", 1.0)
    start_recipient(procs, s.fast_port, 0.0)
    up = time.monotonic()

    def drained() -> bool:
        nonlocal peak
        peak = max(peak, sum(tree_rss_mb(p.pid) for p in workers))
        return received(s.fast_port) >= count

    wait_until(drained, 900, "the backlog to drain", 0.2)
    drained_in = time.monotonic() - up
    delivered_once(s.fast_port, count, "recovery")
    return drained_in, baseline, peak


def attempted(s: Stack) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(s.env["LEADFLOW_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    # every lead tried once (a delivery cycles retrying <-> sending meanwhile)
                    text(
                        "SELECT count(*) FROM deliveries WHERE attempts >= 1 "
                        "AND recipient_id = 'fast' AND status <> 'delivered'"
                    )
                ).scalar()
                or 0
            )
    finally:
        engine.dispose()


# --- the run --------------------------------------------------------------------------------


#: Seconds of pings a run, and the clients: few (the answer time alone) and many (the rate).
PING_SECONDS = float(os.environ.get("BENCH_PING_SECONDS", "10"))
PING_CLIENTS = (32, 256)


def ping_rows(s: Stack, procs: Processes, kind: str) -> list[Row]:
    """Pings answered by one intake: four bidders answering in 50-300 ms and one never
    answering, a 500 ms deadline (the baseline: every answer waits it out)."""
    procs.start(
        f"bidders-{s.bidders_port}",
        [PY, "-m", "bench.bidders", str(s.bidders_port)],
        {**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wait_until(lambda: http_ok(f"http://127.0.0.1:{s.bidders_port}/stats"), 30, "bidders")
    url = f"{s.intake_url}/flows/auction/sources/web/ping"
    bench_pings.run(url, 2, 16)  # warm up
    rows = []
    deadline = bench_pings.DEADLINE_MS
    for clients in PING_CLIENTS:
        rates, p50s, p99s, worst, failed = [], [], [], 0.0, 0
        for _ in range(RUNS):
            rate, answered, errors = bench_pings.run(url, PING_SECONDS, clients)
            rates.append(float(rate))
            p50s.append(percentile(answered, 0.50))
            p99s.append(percentile(answered, 0.99))
            worst = max(worst, max(answered, default=0.0))
            failed += errors
            progress(
                f"pings ({kind}, {clients} clients) {rate:,} /s, p50 {p50s[-1]:.0f} ms, "
                f"p99 {p99s[-1]:.0f} ms"
            )
        figure = Figure(f"pings, {clients} clients, 5 bidders, 1 never answers ({kind})", "/s")
        figure.values = rates
        p99 = statistics.median(p99s)
        rows.append(
            (
                figure.name,
                f"{figure.median:,.0f} pings/s, p50 {statistics.median(p50s):.0f} ms, "
                f"p99 {p99:.0f} ms",
                figure.spread + f", worst {worst:.0f} ms, {failed} not 200",
                f"{deadline} ms auction deadline",
                f"p99 over the deadline: {p99 - deadline:.0f} ms (target < 50 ms)",
            )
        )
    return rows


def timings_row(
    phase: str, title: str, took: dict[str, float], prefix: str, target: str, kind: str
) -> Row:
    """Timings over the filled database of ``kind`` (seconds by name, each shown after
    ``prefix``), told as progress, and their row of the table."""
    progress(f"{phase} ({kind}): " + ", ".join(f"{n} {t * 1000:.0f} ms" for n, t in took.items()))
    return (
        f"{title} over {bench_reports.LEADS:,} leads ({kind})",
        ", ".join(f"{prefix}{n} {t * 1000:,.0f} ms" for n, t in took.items()),
        f"slowest {max(took.values()) * 1000:,.0f} ms",
        "-",
        target,
    )


def machine() -> str:
    mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return (
        f"{platform.node()}: {os.cpu_count()} cores (nproc), {int(mem) // 1024 // 1024} GiB, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="leadflow-bench-"))
    procs = Processes(work)
    rows: list[Row] = []
    # the slow phase's baseline, measured beside each database's runs: one row for all
    alone = Figure("aiohttp client alone, 256 in flight, 1 s recipient", "req/s")
    alone_at: int | None = None  # where its row goes: before the first slow figure
    try:
        hello = Figure("aiohttp hello-world POST, 1 process", "req/s")
        chain = Figure("raw pika chain, 3 hops, windowed confirms", "msg/s")
        for _ in range(RUNS if "hello" in ONLY else 0):
            hello.values.append(hello_rate(procs))
            progress(f"hello-world {hello.values[-1]:,.0f} req/s")
        with vhost() as url:
            for _ in range(RUNS if "chain" in ONLY else 0):
                chain.values.append(pika_chain.run(url, 20_000))
                progress(f"pika chain {chain.values[-1]:,.0f} msg/s")
        for kind in DBS if ONLY & STACK_PHASES else []:
            with stack(kind, work, procs) as s:
                start_recipient(procs, s.fast_port, 0.0)
                start_recipient(procs, s.slow_port, 1.0)
                intake = Figure(f"intake, 1 process ({kind})", "leads/s")
                for _ in range(RUNS if "intake" in ONLY else 0):
                    intake.values.append(intake_rate(s))
                    progress(f"intake ({kind}) {intake.values[-1]:,.0f} leads/s")
                if intake.values:
                    rows.append(
                        (
                            intake.name,
                            f"{intake.median:,.0f} {intake.unit}",
                            intake.spread,
                            f"{hello.median:,.0f} hello-world",
                            f"{intake.median / hello.median:.0%} (target 25%)",
                        )
                    )
                e2e = Figure(f"end to end, fast recipient ({kind})", "leads/s")
                if ONLY & FULL_STACK_PHASES:
                    full_stack(s)
                    end_to_end_rate(s, 1.0)  # warm up
                dups = Figure(f"end to end, duplicate checks on ({kind})", "leads/s")
                # the same flow (an e-mail field more than ``fast``) without its checks
                unchecked = Figure(f"end to end, the same flow without ({kind})", "leads/s")
                capped = Figure(f"end to end, caps on ({kind})", "leads/s")
                figures = {"fast": e2e, "fast_email": unchecked, "fast_dups": dups}
                figures["fast_caps"] = capped
                for turn in range(RUNS if ONLY & {"e2e", "latency"} else 0):
                    # each variant beside the run without, in turns and first every other
                    # time: the run after another pays for its wake (autovacuum, checkpoints)
                    order = ["fast"]
                    order += ["fast_email", "fast_dups"] if "dups" in ONLY else []
                    order += ["fast_caps"] if "caps" in ONLY else []
                    for flow in order if turn % 2 == 0 else order[::-1]:
                        figure = figures[flow]
                        figure.values.append(end_to_end_rate(s, E2E_SECONDS, flow))
                        progress(f"end to end, {flow} ({kind}) {figure.values[-1]:,.0f} leads/s")
                if e2e.values:
                    rows.append(
                        (
                            e2e.name,
                            f"{e2e.median:,.0f} {e2e.unit}",
                            e2e.spread,
                            f"{chain.median:,.0f} raw pika chain",
                            f"{e2e.median / chain.median:.0%} (targets 1,000/s, 25%)",
                        )
                    )
                for figure, without in ((dups, unchecked), (capped, e2e)):
                    if not figure.values:
                        continue
                    # each run beside the run without next to it
                    pairs = [d / e for d, e in zip(figure.values, without.values, strict=False)]
                    rows.append(
                        (
                            figure.name,
                            f"{figure.median:,.0f} {figure.unit}",
                            figure.spread,
                            f"{without.median:,.0f} without",
                            f"costs {1 - statistics.median(pairs):.0%}, median of the "
                            "pairs (target < 10%)",
                        )
                    )
                if "latency" in ONLY:
                    run = latency(s, e2e.median / 2, LATENCY_SECONDS)
                    progress(f"latency ({kind}) {run}")
                    rows.append(
                        (
                            f"latency, {LATENCY_SECONDS:.0f} s paced at half the end-to-end "
                            f"rate ({kind})",
                            f"p50 {run.p50:.0f} ms, p99 {run.p99:.1f} ms at "
                            f"{e2e.median / 2:,.0f} leads/s",
                            f"worst {run.worst:.0f} ms",
                            f"answers p99 {run.answer_p99:.0f} ms, worst {run.answer_worst:.0f} ms",
                            "targets p99 < 20 ms, no answer > 250 ms",
                        )
                    )
                if "ping" in ONLY:
                    rows += ping_rows(s, procs, kind)
                if ONLY & {"e2e", "latency"}:
                    memory = {
                        name: peak_mb(s.services[name][0].pid)
                        for name in ("intake", "router", "http-delivery")
                    }
                    rows.append(
                        (
                            f"peak resident memory, end to end runs ({kind})",
                            ", ".join(f"{n} {mb:.0f} MiB" for n, mb in memory.items()),
                            "-",
                            "-",
                            "target: no worker over 80 MiB",
                        )
                    )
                if "slow" in ONLY:
                    one, two = (
                        Figure("1 s recipient, 1 http-delivery", "deliveries/s"),
                        Figure("1 s recipient, 2 http-delivery", "deliveries/s"),
                    )
                    here = Figure(alone.name, alone.unit)  # beside this database's runs
                    procs_one = procs_two = 0
                    for _ in range(RUNS):
                        here.values.append(client_rate(s.slow_port, 1500, 256))
                        progress(f"slow ({kind}), client alone: {here.values[-1]:,.0f}/s")
                        rate, procs_one = slow_rate(s, 1, 1500)
                        one.values.append(rate)
                        progress(f"slow ({kind}), 1 command: {rate:,.0f}/s")
                        rate, procs_two = slow_rate(s, 2, 2500)
                        two.values.append(rate)
                        progress(f"slow ({kind}), 2 commands: {rate:,.0f}/s")
                    alone.values += here.values
                    alone_at = len(rows) if alone_at is None else alone_at
                    rows.append(
                        (
                            f"{one.name}, {procs_one} OS processes ({kind})",
                            f"{one.median:,.0f} {one.unit}",
                            one.spread,
                            f"{here.median:,.0f} client alone",
                            f"{one.median / here.median:.0%} (target 90%)",
                        )
                    )
                    rows.append(
                        (
                            f"{two.name}, {procs_two} OS processes ({kind})",
                            f"{two.median:,.0f} {two.unit}",
                            two.spread,
                            f"{one.median:,.0f} with one",
                            f"x{two.median / one.median:.2f} (target x1.8)",
                        )
                    )
                if "recovery" in ONLY:
                    drains, peaks = [], []
                    for _ in range(RECOVERY_RUNS):
                        seconds, base, peak = recovery(s, procs, 10_000)
                        progress(f"recovery ({kind}) {seconds:.1f} s, {base:.0f} -> {peak:.0f} MB")
                        drains.append(seconds)
                        peaks.append((base, peak))
                    drain = statistics.median(drains)
                    base, peak = peaks[len(peaks) // 2]
                    rows.append(
                        (
                            f"recovery: 10,000 retried leads, recipient back ({kind})",
                            f"drained in {drain:.1f} s ({10_000 / drain:,.0f} leads/s)",
                            f"{min(drains):.1f}-{max(drains):.1f} s",
                            f"{e2e.median:,.0f} leads/s end to end" if e2e.values else "-",
                            f"workers {base:.0f} MB -> peak {peak:.0f} MB",
                        )
                    )
        for kind in DBS if "report" in ONLY else []:
            with database(kind, work) as url:
                filled = bench_reports.fill(url)
                progress(f"report ({kind}): {bench_reports.LEADS:,} leads filled in {filled:.1f} s")
                took = bench_reports.timings(url, RUNS)
                shown = bench_console.timings(url, RUNS)
            rows.append(
                timings_row(
                    "report", "leadflow report", took, "--by ", "target: each under 1 s", kind
                )
            )
            rows.append(
                timings_row(
                    "console", "console pages", shown, "", "target: each under 200 ms", kind
                )
            )
        if alone_at is not None:
            rows.insert(
                alone_at,
                (alone.name, f"{alone.median:,.0f} {alone.unit}", alone.spread, "-", "baseline"),
            )
        baselines = [
            (figure.name, f"{figure.median:,.0f} {figure.unit}", figure.spread, "-", "baseline")
            for figure in (hello, chain)
            if figure.values
        ]
        rows = baselines + rows
    finally:
        procs.stop_all()
    report(side_by_side(rows), (time.monotonic() - began) / 60)


def side_by_side(rows: list[Row]) -> list[Row]:
    """The rows of each figure together, in the order the figures first appear: its
    PostgreSQL row, then its SQLite row (a figure's rows differ only in the database their
    name ends with)."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(DB_SUFFIX.sub("", row[0]), []).append(row)
    order = {f"({kind})": n for n, kind in enumerate(KINDS)}

    def rank(row: Row) -> int:
        found = DB_SUFFIX.search(row[0])
        return order[found.group(0).strip()] if found else -1

    return [row for group in groups.values() for row in sorted(group, key=rank)]


def progress(text: str) -> None:
    sys.stderr.write(f"[{datetime.now(UTC):%H:%M:%S}] {text}\n")
    sys.stderr.flush()


def report(rows: list[Row], minutes: float) -> None:
    header = ("figure", f"median of {RUNS}", "spread", "baseline (same run)", "ratio / target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    table = "\n".join(lines)
    sys.stdout.write(table + f"\nthe whole run took {minutes:.1f} minutes\n")
    if "BENCH_ONLY" in os.environ or "BENCH_DBS" in os.environ:
        return  # a partial run is not the record
    results = ROOT / "bench" / "RESULTS.md"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    # The written analysis (the sections after the table) is kept; it is updated by hand
    # when the hot path changes.
    previous = results.read_text() if results.exists() else ""
    analysis = previous[previous.find("\n## ") :] if "\n## " in previous else ""
    results.write_text(
        "# Benchmark results\n\n"
        f"{stamp} on {machine()}; command: `make bench` (BENCH_RUNS={RUNS}).\n"
        "Every process (RabbitMQ, PostgreSQL, leadflow, recipients, load generators) on this "
        f"one machine. The whole run took {minutes:.1f} minutes.\n\n" + table + "\n" + analysis
    )


if __name__ == "__main__":
    main()
