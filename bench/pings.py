"""The ping benchmark: pings answered by one intake process, each auction asking four
bidders answering in 50 to 300 ms and one that never answers, against a 500 ms deadline.
Every ping carries fields of its own (none is a repeat answered from the first)."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import aiohttp

#: The auction's deadline in the benchmark's flow (bench/run.py CONFIG).
DEADLINE_MS = 500
BIDDER_DELAYS_MS = (50, 120, 200, 300)


def config(fast_port: int, bidders_port: int) -> dict[str, Any]:
    """The bidders and the auction flow, to merge into the benchmark's configuration."""
    bidders = f"http://127.0.0.1:{bidders_port}"
    post = {"url": f"http://127.0.0.1:{fast_port}/leads"}
    recipients: dict[str, Any] = {
        f"bid{ms}": {
            "ping": {
                "url": f"{bidders}/bid/{ms}",
                "fields": {"ref": "{{lead.ref}}"},
                "timeout": "2s",
                "response": {"price_path": "bid", "reference_path": "id"},
            },
            "http": post,
        }
        for ms in BIDDER_DELAYS_MS
    }
    recipients["never_bids"] = {
        "ping": {"url": f"{bidders}/never", "timeout": "2s", "response": {"price_path": "bid"}},
        "http": post,
    }
    flow = {
        "fields": {"ref": {"type": "string"}, "state": {"type": "state"}},
        "sources": {"web": {}},
        "steps": [{"auction": {"recipients": list(recipients), "timeout": f"{DEADLINE_MS}ms"}}],
    }
    return {"recipients": recipients, "flows": {"auction": flow}}


async def _run(url: str, seconds: float, concurrency: int) -> tuple[int, list[float], int]:
    """Pings from ``concurrency`` clients for ``seconds``: (answered, ms each, errors)."""
    answered: list[float] = []
    errors = [0]
    ends = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            while time.monotonic() < ends:
                body = {"ref": secrets.token_hex(8), "state": "TX"}
                started = time.monotonic()
                async with http.post(url, data=body) as response:
                    await response.read()
                    if response.status != 200:
                        errors[0] += 1
                        continue
                answered.append((time.monotonic() - started) * 1000)

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        took = time.monotonic() - began
    return int(len(answered) / took), answered, errors[0]


def run(url: str, seconds: float, concurrency: int) -> tuple[int, list[float], int]:
    return asyncio.run(_run(url, seconds, concurrency))
