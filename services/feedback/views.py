"""Thin views: read the request, decide and record it, answer in the client's format."""

from __future__ import annotations

import logging

from aiohttp import web

from services.feedback import records
from services.feedback.body import MAX_BODY_BYTES, Feedback, InvalidFeedback, read_feedback
from shared.db.engine import utcnow
from shared.metrics import FEEDBACK
from shared.web import CONFIG, FACTORY, RELAY, answer, media_of, run_db

logger = logging.getLogger(__name__)


async def read_request(request: web.Request) -> Feedback | InvalidFeedback:
    """The feedback in the body, or what is wrong with the request."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return InvalidFeedback(413, f"Body too large: at most {MAX_BODY_BYTES // 1024} KiB")
    try:
        return read_feedback(request.headers.get("Content-Type"), body, request.charset)
    except InvalidFeedback as exc:
        return exc


async def post_feedback(request: web.Request) -> web.Response:
    received_at = utcnow()
    media = media_of(request)
    # blank as the OpenAPI document's ``\S`` says: ASCII white space only (Python's own
    # strip() also takes control characters such as \x1d for white space)
    event_id = request.query.get("event_id", "").strip(" \t\n\r\f\v")
    if not event_id:
        return answer({"outcome": "error", "reason": "event_id is required"}, media, status=400)
    feedback = await read_request(request)
    app = request.app
    try:
        receipt = await run_db(
            app,
            records.record,
            app[FACTORY],
            app[CONFIG],
            event_id,
            feedback,
            received_at,
            request.headers.get("Idempotency-Key"),
        )
    except records.UnknownEvent as exc:
        logger.info("feedback for an unknown event: %s", exc, extra={"event_id": event_id[:64]})
        return answer({"outcome": "error", "reason": str(exc)}, media, status=404)
    FEEDBACK.labels(receipt.kind or "unreadable", receipt.outcome).inc()
    if receipt.outbox is not None:
        app[RELAY].submit(receipt.outbox)
    logger.info(
        "feedback %s from %s: %s%s",
        receipt.kind or "(unreadable)",
        receipt.recipient_id or "-",
        receipt.outcome,
        f" ({receipt.reason})" if receipt.reason else "",
        extra={"lead_id": receipt.lead_id, "event_id": receipt.event_id},
    )
    return answer(receipt.answer(), media, status=receipt.http_status)
