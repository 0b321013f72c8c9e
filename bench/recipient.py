"""A benchmark recipient: answers every lead (optionally after a delay) and records when
each lead id arrived. ``GET /stats`` gives the count of leads and of requests (a lead
sent twice counts once in the first, twice in the second), ``GET /times`` every arrival."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiohttp import web

arrivals: dict[str, float] = {}
requests = [0]
ANSWER = json.dumps({"outcome": "success", "price": 1}).encode()


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    lead_id = request.headers.get("X-Lead-Id") or json.loads(body).get("lead_id", "")
    delay = request.app["delay"]
    if delay:
        await asyncio.sleep(delay)
    arrivals.setdefault(lead_id, time.time())
    requests[0] += 1
    return web.Response(body=ANSWER, content_type="application/json")


async def stats(_request: web.Request) -> web.Response:
    return web.json_response({"count": len(arrivals), "requests": requests[0]})


async def times(_request: web.Request) -> web.Response:
    return web.json_response(arrivals)


async def reset(_request: web.Request) -> web.Response:
    arrivals.clear()
    requests[0] = 0
    return web.json_response({"count": 0})


def main() -> None:
    port, delay = int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    app = web.Application()
    app["delay"] = delay
    app.router.add_post("/leads", receive)
    app.router.add_get("/stats", stats)
    app.router.add_get("/times", times)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
