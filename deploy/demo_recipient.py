"""A demo lead buyer for `make run`: accepts every lead with a phone, at a price of 12.50."""

import logging

from aiohttp import web

logger = logging.getLogger("demo_recipient")


async def receive(request: web.Request) -> web.Response:
    lead = await request.json()
    logger.info("received lead %s (event %s)", lead.get("lc_lead_id"), lead.get("lc_event_id"))
    if not lead.get("phone"):
        return web.json_response({"result": "rejected", "reason": "phone is missing"})
    return web.json_response({"result": "accepted", "price": 12.50})


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo-recipient %(message)s")
    app = web.Application()
    app.router.add_post("/leads", receive)
    web.run_app(app, host="127.0.0.1", port=9000, print=None)


if __name__ == "__main__":
    main()
