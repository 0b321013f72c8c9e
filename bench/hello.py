"""The baseline for intake: an aiohttp hello-world POST served by one process."""

from __future__ import annotations

import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=201, text='{"outcome": "success"}', content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    web.run_app(
        app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, backlog=4096
    )


if __name__ == "__main__":
    main()
