"""Bids asked of real HTTP bidders (local aiohttp servers) within one hard deadline: a
bidder slower than the deadline is a ``timeout``, one refusing connections an ``error``,
one answering garbage ``no bid``, and the answers that came in time are bids."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from aiohttp import web

from shared import auction
from shared.flowconfig import parse_config
from shared.outbound.send import client_session
from tests.support.infra import free_port


async def bidder_server(port: int, never_answers: asyncio.Event) -> web.AppRunner:
    async def fast(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"status": "accepted", "bid": 7.5, "bid_id": body["ref"]})

    async def slow(request: web.Request) -> web.Response:
        await never_answers.wait()
        return web.json_response({"bid": 99})

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=b"\x00\xff<<not", content_type="application/json")

    async def declines(request: web.Request) -> web.Response:
        return web.json_response({"status": "declined", "bid": 20})

    app = web.Application()
    app.router.add_post("/fast", fast)
    app.router.add_post("/slow", slow)
    app.router.add_post("/garbage", garbage)
    app.router.add_post("/declines", declines)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def config_for(port: int, closed_port: int) -> dict[str, object]:
    def pinged(path: str, base: str = f"http://127.0.0.1:{port}") -> dict[str, object]:
        return {
            "ping": {
                "url": f"{base}{path}",
                "fields": {"ref": "{{lead.ref}}"},
                "response": {
                    "outcome_search_term": "accepted",
                    "outcome_search_path": "status",
                    "price_path": "bid",
                    "reference_path": "bid_id",
                },
            },
            "http": {"url": f"{base}/post"},
        }

    return {
        "recipients": {
            "fast": pinged("/fast"),
            "slow": pinged("/slow"),
            "garbage": pinged("/garbage"),
            "declines": pinged("/declines"),
            "refusing": pinged("/ping", f"http://127.0.0.1:{closed_port}"),
            "fixed": {"price": 3, "http": {"url": f"http://127.0.0.1:{port}/post"}},
        },
        "flows": {
            "f": {
                "fields": {"ref": {"type": "string"}},
                "sources": {"s": {}},
                "steps": [
                    {
                        "auction": {
                            "recipients": [
                                "slow",
                                "fast",
                                "garbage",
                                "declines",
                                "refusing",
                                "fixed",
                            ],
                            "timeout": "300ms",
                        }
                    }
                ],
            }
        },
    }


def test_every_bidder_is_answered_for_at_the_deadline_whatever_it_does() -> None:
    async def run() -> list[auction.Bid]:
        port, never_answers = free_port(), asyncio.Event()
        runner = await bidder_server(port, never_answers)
        config = parse_config(config_for(port, free_port()), {})
        step = config.flows["f"].steps[0].auction
        assert step is not None
        try:
            async with client_session(16) as http:
                return await auction.collect(
                    http,
                    step,
                    config,
                    [b.recipient for b in step.recipients],
                    {"lead": {"ref": "R-1"}},
                    ["ref"],
                    "ping-1",
                )
        finally:
            never_answers.set()
            await runner.cleanup()

    bids = {bid.recipient_id: bid for bid in asyncio.run(run())}

    assert {rid: bid.outcome for rid, bid in bids.items()} == {
        "slow": auction.TIMEOUT,
        "fast": auction.BID,
        "garbage": auction.NO_BID,
        "declines": auction.NO_BID,
        "refusing": auction.ERROR,
        "fixed": auction.BID,
    }
    assert (bids["fast"].amount, bids["fast"].reference) == (Decimal("7.50"), "R-1")
    assert bids["fixed"].amount == Decimal("3.00") and not bids["fixed"].pinged
    ranked = auction.rank(list(bids.values()), None)
    assert [b.recipient_id for b in ranked] == ["fast", "fixed"]
