"""Running one worker process: ``main(stop)`` on an event loop until SIGTERM or SIGINT.

Both signals set the same stop event (a second one changes nothing), so a terminal's
Ctrl-C, which reaches every process of ``leadflow up`` at once, and the SIGTERM that
``leadflow up`` sends next stop a worker the same quiet way. With a metrics port,
``/metrics`` (with the depth of the worker's queues) and ``/healthz`` are served from a
thread.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from shared.messaging.admin import queue_depths

logger = logging.getLogger(__name__)

#: The event loop is busy most of the time; a database thread whose answer arrived would
#: wait up to the default 5 ms for the GIL at every round trip (the convoy effect).
SWITCH_INTERVAL_SECONDS = 0.0005


def run_worker(
    main: Callable[[asyncio.Event], Awaitable[None]],
    *,
    queues: Sequence[str],
    broker_url: str,
    metrics_port: int | None = None,
) -> int:
    """Run ``main(stop)`` until it returns; returns the process's exit code."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    server = None
    if metrics_port:
        from shared.metrics import QueueDepthCollector, serve_metrics

        depths = QueueDepthCollector(lambda: queue_depths(broker_url, queues))
        server = serve_metrics(metrics_port, extra=[depths])

    async def body() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        asyncio.run(body())
        return 0
    finally:
        if server is not None:
            server.shutdown()
