"""A demo lead buyer for `make run`: accepts every lead with a phone, at a price of 12.50,
and bids 10.00 for every ping (the `auction` flow of deploy/example.yaml)."""

import logging
import secrets

from aiohttp import web

logger = logging.getLogger("demo_recipient")


async def receive(request: web.Request) -> web.Response:
    lead = await request.json()
    logger.info("received lead %s (event %s)", lead.get("lc_lead_id"), lead.get("lc_event_id"))
    if not lead.get("phone"):
        return web.json_response({"result": "rejected", "reason": "phone is missing"})
    return web.json_response({"result": "accepted", "price": 12.50})


async def bid(request: web.Request) -> web.Response:
    ping = await request.json()
    reference = secrets.token_hex(4)
    logger.info("pinged for a lead from %s: bid 10.00 (%s)", ping.get("state"), reference)
    return web.json_response({"status": "accepted", "bid": 10.00, "bid_id": reference})


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo-recipient %(message)s")
    app = web.Application()
    app.router.add_post("/leads", receive)
    app.router.add_post("/ping", bid)
    web.run_app(app, host="127.0.0.1", port=9000, print=None)


if __name__ == "__main__":
    main()
