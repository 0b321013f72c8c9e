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

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from typing import BinaryIO, NoReturn

import click

from services.cli import _settings, main
from shared.lifecycle import PARENT_PID_VARIABLE

SERVICES = ("intake", "router", "http-delivery", "email-delivery", "feedback", "console")
WORKERS = ("router", "http-delivery", "email-delivery")
#: How long the copies get to stop before they are killed (their own grace is shorter).
STOP_TIMEOUT_SECONDS = 60
Popen = subprocess.Popen[bytes]


@main.command()
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
    supervise(counts)


def supervise(scale: dict[str, int]) -> NoReturn:
    """Run the copies ``scale`` asks for until they end, then exit with their status;
    worker copies get consecutive metrics ports from LEADFLOW_METRICS_PORT (0: none)."""
    sys.exit(run(scale, metrics_base_port=_settings().metrics_port or None))


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


def _pump(name: str, process: Popen, width: int) -> None:
    """Copy the child's lines to our output; once that is gone (a closed terminal), keep
    reading them anyway, so the child never blocks on a full pipe."""
    assert process.stdout is not None
    prefix = f"{name:<{width}} | ".encode()
    out: BinaryIO | None = sys.stdout.buffer
    for line in iter(process.stdout.readline, b""):
        if out is None:
            continue
        try:
            out.write(prefix + line)
            out.flush()
        except (OSError, ValueError):
            out = None


def run(scale: dict[str, int], *, metrics_base_port: int | None = 9100) -> int:
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda _signum, _frame: stopping.set())
    copies = _start(scale, metrics_base_port)
    failed = False
    running = dict(copies)
    while running and not stopping.is_set():
        for name, process in list(running.items()):
            code = process.poll()
            if code is not None:
                del running[name]
                failed = failed or code != 0
                _say(f"{name} exited with code {code}")
        if running:
            stopping.wait(0.5)
    return 1 if _stop(copies) or failed else 0


def _start(scale: dict[str, int], metrics_base_port: int | None) -> dict[str, Popen]:
    """Start each copy (named ``service.N``); what it prints is copied to our output."""
    copies: dict[str, Popen] = {}
    names = [(s, f"{s}.{n}") for s in SERVICES for n in range(1, scale[s] + 1)]
    width = max((len(name) for _, name in names), default=8)
    ports = itertools.count(metrics_base_port) if metrics_base_port is not None else None
    for service, name in names:
        port = next(ports) if ports is not None and service in WORKERS else None
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_PID_VARIABLE: str(os.getpid())}
        if port is not None:
            env["LEADFLOW_METRICS_PORT"] = str(port)
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", service],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        copies[name] = process
        threading.Thread(target=_pump, args=(name, process, width), daemon=True).start()
        metrics = f", metrics on :{port}" if port else ""
        _say(f"started {name} (pid {process.pid}{metrics})")
    return copies


def _stop(copies: dict[str, Popen]) -> bool:
    """SIGTERM to every copy still running, then wait for all; True if one had to be
    killed or did not exit cleanly."""
    for process in copies.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    failed = False
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in copies.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            failed = True
        if process.returncode not in (0, -signal.SIGTERM):
            failed = True
    _say("all services stopped")
    return failed


def _say(line: str) -> None:
    try:
        print(line, flush=True)
    except (OSError, ValueError):
        pass  # our output is gone (a closed terminal): the copies are stopped all the same
