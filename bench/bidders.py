"""Benchmark bidders: ``POST /bid/<ms>`` answers a bid after that many milliseconds,
``POST /never`` never answers; ``GET /stats`` counts the pings."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

pings = [0]


async def bid(request: web.Request) -> web.Response:
    await request.read()
    pings[0] += 1
    delay = int(request.match_info["ms"]) / 1000
    await asyncio.sleep(delay)
    return web.json_response({"bid": round(2 + delay * 10, 2), "id": "b"})


async def never(request: web.Request) -> web.Response:
    await request.read()
    pings[0] += 1
    await asyncio.sleep(3600)
    return web.json_response({})


async def stats(_request: web.Request) -> web.Response:
    return web.json_response({"pings": pings[0]})


def main() -> None:
    app = web.Application()
    app.router.add_post("/bid/{ms}", bid)
    app.router.add_post("/never", never)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
