"""How long the console's pages take with a million leads stored (SPEC section 16: each
under 200 ms on PostgreSQL). Runs `leadflow console` against a database filled by
``bench.reports.fill``, signs in, and times each page (median of ``runs`` requests after
one warm-up), the deep page of the lead list included (paged by key, never OFFSET).

`python -m bench.console` alone, or the ``report`` phase of `make bench`."""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.reports import LEADS, print_timings

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CONFIG = """
recipients:
{recipients}
flows:
{flows}
"""


def _config() -> str:
    recipients = "\n".join(
        f"  buyer{i}: {{http: {{url: 'http://127.0.0.1:9/b{i}'}}}}" for i in range(10)
    )
    flows = "\n".join(
        f"  flow{f}:\n    sources: {{{', '.join(f'src{s}: {{}}' for s in range(f, 20, 4))}}}\n"
        f"    steps: [{{recipient: buyer{f}}}]"
        for f in range(4)
    )
    return CONFIG.format(recipients=recipients, flows=flows)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pages(leads: int) -> dict[str, str]:
    deep = f"l{max(1, leads - 10)}"  # one of the oldest leads: the list's far end
    return {
        "dashboard": "/",
        "leads, first page": "/leads",
        "leads, a page near the end": f"/leads?before={deep}",
        "leads of a flow that failed": "/leads?flow=flow1&outcome=failure",
        "one lead": f"/leads/l{leads // 2}",
        "recipients": "/recipients",
        "flows": "/flows",
    }


def timings(url: str, runs: int = 3, leads: int = LEADS) -> dict[str, float]:
    """Seconds each page takes (median of ``runs``) from a console on the database."""
    work = Path(tempfile.mkdtemp(prefix="leadflow-console-bench-"))
    port = _free_port()
    env = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": url,
        "LEADFLOW_CONSOLE_PORT": str(port),
        "LEADFLOW_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    config = work / "console.yaml"
    config.write_text(_config())
    cli = [PY, "-m", "services.cli"]
    subprocess.run([*cli, "config", "apply", str(config)], env=env, check=True, capture_output=True)
    password = secrets.token_urlsafe(12)
    subprocess.run(
        [*cli, "users", "add", "bench", "--role", "viewer", "--password-stdin"],
        env=env,
        input=password,
        text=True,
        check=True,
        capture_output=True,
    )
    console = subprocess.Popen(
        [*cli, "console"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        http = requests.Session()
        http.get(f"{base}/login", timeout=10)  # the sign-in form's token, in its cookie
        token = http.cookies["leadflow_login"]
        signed = http.post(
            f"{base}/login",
            data={"name": "bench", "password": password, "csrf_token": token},
            timeout=10,
        )
        signed.raise_for_status()
        medians: dict[str, list[float]] = {}
        csrf = http.cookies["leadflow_console"].split(".")[2]
        searched = {"csrf_token": csrf, "email": f"Person{leads // 3 % 400000}@Example.com"}
        for _ in range(runs + 1):  # the first one warms up
            began = time.monotonic()
            http.post(f"{base}/leads", data=searched, timeout=30).raise_for_status()
            medians.setdefault("leads found by e-mail", []).append(time.monotonic() - began)
        for name, path in pages(leads).items():
            http.get(f"{base}{path}", timeout=30).raise_for_status()  # warm up
            seconds = []
            for _ in range(runs):
                began = time.monotonic()
                http.get(f"{base}{path}", timeout=30).raise_for_status()
                seconds.append(time.monotonic() - began)
            medians[name] = [statistics.median(seconds)]
        return {name: statistics.median(taken[-runs:]) for name, taken in medians.items()}
    finally:
        console.terminate()
        console.wait(30)


def main() -> None:
    print_timings(timings)


if __name__ == "__main__":
    main()
