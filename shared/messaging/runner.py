"""Running a worker pool: dramatiq's own CLI (processes, threads, signals, graceful stop)."""

from __future__ import annotations

import dramatiq.cli


def run_worker_pool(
    factory: str, *, queue: str, processes: int, threads: int, shutdown_timeout_ms: int = 30_000
) -> int:
    """Run ``processes`` x ``threads`` workers consuming ``queue`` only; ``factory``
    (``module:function``) builds the broker and declares the handler in each worker
    process. Returns the exit code."""
    parser = dramatiq.cli.make_argument_parser()
    args = parser.parse_args(
        [
            factory,
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            str(shutdown_timeout_ms),
            "--queues",
            queue,
            "--skip-logging",
        ]
    )
    return int(dramatiq.cli.main(args))
