"""Where the CPU goes: CPU time per lead of each process during an end-to-end run.

`python -m bench.profile [postgresql|sqlite]` (``PROFILE_FLOW=fast_dups``: the flow with
duplicate checks) starts the real stack (as `make bench`
does), pushes leads through it for a few seconds, and reads each process's CPU time
(user + system, from /proc) before and after: leadflow's services, the recipient, the
load generator, and every PostgreSQL and RabbitMQ process of the machine. Prints
microseconds of CPU per lead for each, and the end-to-end rate.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.run import (
    E2E_SECONDS,
    Processes,
    free_port,
    full_stack,
    peak_mb,
    queue_stat,
    received,
    reset,
    settled,
    stack,
    start_recipient,
    wait_until,
    wrk_leads,
)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def pids_named(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def snapshot(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}


def spy(groups: dict[str, list[int]], work: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on each leadflow service (PROFILE_SPY=1): collapsed stacks in the work dir."""
    spies = []
    for name in ("intake", "router", "http-delivery"):
        for pid in groups[name]:
            out = work / f"{name}.folded"
            spies.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--output",
                        str(out),
                        "--nonblocking",
                        "--gil",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    sys.stderr.write(f"py-spy output in {work}\n")
    return spies


def group_sizes(ports: dict[str, int]) -> str:
    """Messages per worker transaction, from each worker's metrics."""
    lines = []
    for service, port in ports.items():
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        sums = dict(re.findall(r'leadflow_group_commit_size_sum\{work="(\w+)"\} ([\d.e+]+)', text))
        counts = re.findall(r'leadflow_group_commit_size_count\{work="(\w+)"\} ([\d.e+]+)', text)
        seconds = dict(
            re.findall(r'leadflow_group_commit_seconds_sum\{work="(\w+)"\} ([\d.e+-]+)', text)
        )
        for work, count in counts:
            if float(count):
                mean = float(sums[work]) / float(count)
                ms = float(seconds.get(work, "nan")) / float(count) * 1000
                lines.append(
                    f"{service} {work}: {float(count):,.0f} transactions, "
                    f"{mean:.1f} messages and {ms:.1f} ms each"
                )
    return "".join(f"{line}\n" for line in lines)


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "postgresql"
    flow = os.environ.get("PROFILE_FLOW", "fast")  # fast_dups: with duplicate checks
    work = Path(tempfile.mkdtemp(prefix="leadflow-profile-"))
    procs = Processes(work)
    try:
        with stack(kind, work, procs) as s:
            recipient = start_recipient(procs, s.fast_port, 0.0)
            full_stack(s, 0)
            s.stop("router")
            ports = {"router": free_port(), "http-delivery": free_port()}
            for service, port in ports.items():
                s.start(service, LEADFLOW_METRICS_PORT=str(port))
            wait_until(lambda: queue_stat(s, "http_delivery", "consumers") >= 1, 60, "workers")
            wrk_leads(s.submit_url(flow), 1)  # warm up
            wait_until(lambda: settled(s), 300, "the queues drained", 0.5)
            reset(s.fast_port)
            groups = {
                "intake": [p.pid for p in s.services["intake"]],
                "router": [p.pid for p in s.services["router"]],
                "http-delivery": [p.pid for p in s.services["http-delivery"]],
                "recipient": [recipient.pid],
                "postgresql": pids_named("postgres") if kind == "postgresql" else [],
                "rabbitmq": pids_named("beam.smp"),
            }
            spies = spy(groups, work) if os.environ.get("PROFILE_SPY") else []
            before = snapshot(groups)
            wrk_before = time.process_time()
            started = time.monotonic()
            children_before = os.times().children_user + os.times().children_system
            _, count = wrk_leads(s.submit_url(flow), E2E_SECONDS, connections=16)
            wait_until(lambda: received(s.fast_port) >= count, 600, "every lead delivered", 0.05)
            wait_until(lambda: settled(s), 300, "the flows finished", 0.2)
            elapsed = time.monotonic() - started
            after = snapshot(groups)
            for process in spies:
                process.send_signal(2)
                process.wait(30)
            wrk_cpu = os.times().children_user + os.times().children_system - children_before
            del wrk_before
            groups_report = group_sizes(ports) + "".join(
                f"{name} peak resident memory: {peak_mb(pids[0]):.0f} MiB\n"
                for name, pids in groups.items()
                if name in ("intake", "router", "http-delivery") and pids
            )
    finally:
        procs.stop_all()
    used = {name: after[name] - before[name] for name in groups}
    used["load generator (wrk)"] = wrk_cpu
    total = sum(used.values())
    sys.stdout.write(
        f"{kind}: {count} leads in {elapsed:.1f} s = {count / elapsed:,.0f} leads/s\n"
        f"{'process':<22} {'CPU us/lead':>12} {'share':>7}\n"
    )
    for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        sys.stdout.write(f"{name:<22} {seconds / count * 1e6:>12,.0f} {seconds / total:>7.0%}\n")
    sys.stdout.write(f"{'total':<22} {total / count * 1e6:>12,.0f}\n{groups_report}")


if __name__ == "__main__":
    main()
