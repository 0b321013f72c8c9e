"""``leadflow up``: every service on this machine, one OS process per copy, in the foreground.

The command and the supervisor it runs (this module is the supervisor; nothing else
starts copies).

Output lines are prefixed with the copy's name. The copies stay in this process's group,
so a terminal's Ctrl-C reaches all of them at once; Ctrl-C, SIGTERM or SIGHUP here also
sends each copy SIGTERM (a service takes either signal, once or twice, as one quiet stop)
and waits for them to finish what they hold. Each copy dies with this process however it
ends (``shared.lifecycle``), so none is left behind.
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
from typing import BinaryIO

import click

from services.cli import _settings
from shared.lifecycle import PARENT_PID_VARIABLE

SERVICES = ("intake", "router", "http-delivery", "email-delivery", "feedback", "console")
WORKERS = ("router", "http-delivery", "email-delivery")
logger = logging.getLogger(__name__)
#: How long the copies get to stop before they are killed (their own grace is shorter).
STOP_TIMEOUT_SECONDS = 60


@click.command()
@click.option(
    "--scale",
    multiple=True,
    metavar="SERVICE=N",
    help="copies of a service, e.g. --scale http-delivery=4",
)
def up(scale: tuple[str, ...]) -> None:
    """Run every service on this machine in the foreground (Ctrl-C stops them)."""
    try:
        counts = parse_scale(scale)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scale") from None
    # Worker copies get consecutive metrics ports from LEADFLOW_METRICS_PORT (0: none).
    base = _settings().metrics_port
    sys.exit(run(counts, metrics_base_port=base or None))


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
    """Copy the child's lines to our output; once that is gone (a closed terminal), keep
    reading them anyway, so the child never blocks on a full pipe."""
    assert copy.process.stdout is not None
    prefix = f"{copy.name:<{width}} | ".encode()
    out: BinaryIO | None = sys.stdout.buffer
    for line in iter(copy.process.stdout.readline, b""):
        if out is None:
            continue
        try:
            out.write(prefix + line)
            out.flush()
        except (OSError, ValueError):
            out = None


def run(scale: dict[str, int], *, metrics_base_port: int | None = 9100) -> int:
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    copies = _start(scale, metrics_base_port)
    failed = False
    reported: set[str] = set()
    while not stopping.is_set():
        for copy in copies:
            code = copy.process.poll()
            if code is not None and copy.name not in reported:
                reported.add(copy.name)
                failed = failed or code != 0
                _say(f"{copy.name} exited with code {code}")
        if len(reported) == len(copies):
            break
        stopping.wait(0.5)
    return 1 if _stop(copies) or failed else 0


def _start(scale: dict[str, int], metrics_base_port: int | None) -> list[Copy]:
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
        env[PARENT_PID_VARIABLE] = str(os.getpid())
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", service],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        copy = Copy(f"{service}.{index + 1}", service, process, port)
        copies.append(copy)
        threading.Thread(target=_pump, args=(copy, width), daemon=True).start()
        metrics = f", metrics on :{port}" if port else ""
        _say(f"started {copy.name} (pid {process.pid}{metrics})")
    return copies


def _stop(copies: list[Copy]) -> bool:
    """SIGTERM to every copy still running, then wait for all; True if one had to be
    killed or did not exit cleanly."""
    for copy in copies:
        if copy.process.poll() is None:
            copy.process.send_signal(signal.SIGTERM)
    failed = False
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for copy in copies:
        try:
            copy.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            copy.process.kill()
            copy.process.wait()
            failed = True
        if copy.process.returncode not in (0, -signal.SIGTERM):
            failed = True
    _say("all services stopped")
    return failed


def _say(line: str) -> None:
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # our output is gone (a closed terminal): the copies are stopped all the same
