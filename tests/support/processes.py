"""Starting and stopping leadflow processes the way a user does, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.infra import wait_for

LEADFLOW = [sys.executable, "-m", "services.cli"]


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            args, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"process exited early:\n{log.read_text()[-3000:]}")
        try:
            return requests.get(url, timeout=5).status_code == 200
        except requests.RequestException:  # refused, or slow to answer while starting
            return False

    wait_for(healthy, timeout=60, interval=0.2, message=url)


def service_children(pid: int, service: str = "") -> list[int]:
    """The leadflow services (``service`` alone, if given) that ``pid`` started."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [
        int(line.split()[0])
        for line in out.splitlines()
        if int(line.split()[1]) == pid and f"services.cli {service}".strip() in line
    ]
