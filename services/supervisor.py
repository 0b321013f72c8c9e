"""``leadflow up``: every service on this machine, one OS process per copy, in the foreground.

Output lines are prefixed with the copy's name; Ctrl-C (or SIGTERM) stops every copy with
SIGTERM and waits for them to finish what they hold.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

SERVICES = ("intake", "router", "http-delivery", "email-delivery", "feedback")
WORKERS = ("router", "http-delivery", "email-delivery")
logger = logging.getLogger(__name__)


def parse_scale(items: tuple[str, ...]) -> dict[str, int]:
    scale = dict.fromkeys(SERVICES, 1)
    for item in items:
        name, sep, count = item.partition("=")
        name = name.strip().replace("_", "-")
        if not sep or name not in scale or not count.strip().isdigit():
            raise ValueError(
                f"--scale takes SERVICE=N with a service of {', '.join(SERVICES)}: {item!r}"
            )
        scale[name] = int(count)
    return scale


@dataclass
class Copy:
    name: str
    service: str
    process: subprocess.Popen[bytes]
    metrics_port: int | None


def _pump(copy: Copy, width: int) -> None:
    assert copy.process.stdout is not None
    prefix = f"{copy.name:<{width}} | ".encode()
    for line in iter(copy.process.stdout.readline, b""):
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()


def run(scale: dict[str, int], *, metrics_base_port: int | None = 9100) -> int:
    copies: list[Copy] = []
    names = [(s, i) for s in SERVICES for i in range(scale[s])]
    width = max((len(f"{s}.{i + 1}") for s, i in names), default=8)
    next_port = metrics_base_port
    for service, index in names:
        env = dict(os.environ)
        port = None
        if service in WORKERS and next_port is not None:
            port = next_port
            next_port += 1
            env["LEADFLOW_METRICS_PORT"] = str(port)
        env["PYTHONUNBUFFERED"] = "1"
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", service],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        copy = Copy(f"{service}.{index + 1}", service, process, port)
        copies.append(copy)
        threading.Thread(target=_pump, args=(copy, width), daemon=True).start()
        sys.stdout.write(
            f"started {copy.name} (pid {process.pid}{f', metrics on :{port}' if port else ''})\n"
        )
    sys.stdout.flush()

    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    failed = False
    reported: set[str] = set()
    while not stopping.is_set():
        for copy in copies:
            code = copy.process.poll()
            if code is not None and copy.name not in reported:
                reported.add(copy.name)
                failed = failed or code != 0
                sys.stdout.write(f"{copy.name} exited with code {code}\n")
                sys.stdout.flush()
        if len(reported) == len(copies):
            break
        stopping.wait(0.5)
    for copy in copies:
        if copy.process.poll() is None:
            copy.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    for copy in copies:
        try:
            copy.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            copy.process.kill()
            copy.process.wait()
            failed = True
        if copy.process.returncode not in (0, -signal.SIGTERM):
            failed = True
    sys.stdout.write("all services stopped\n")
    return 1 if failed else 0
