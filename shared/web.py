"""aiohttp plumbing both HTTP services share: answers in the client's format, one error
middleware that maps every error to ``{"outcome": "error", "reason": ...}`` and a status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from shared.answers import JSON, NotAcceptable, negotiate, render
from shared.bodies import BodyError
from shared.errors import NotFound

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(data: dict[str, Any], media: str, *, status: int = 200) -> web.Response:
    body, content_type = render(data, media)
    response = web.Response(body=body, status=status)
    response.headers["Content-Type"] = content_type
    return response


def error_answer(request: web.Request, reason: str, status: int) -> web.Response:
    return answer({"outcome": "error", "reason": reason}, media_of(request), status=status)


def media_of(request: web.Request) -> str:
    """The client's answer format; JSON when its Accept names nothing we produce."""
    try:
        return negotiate(request.headers.get("Accept"))
    except NotAcceptable:
        return JSON


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answers in the client's format with outcome ``error`` and a reason."""
    try:
        return await handler(request)
    except NotAcceptable:
        return answer(
            {
                "outcome": "error",
                "reason": "Not acceptable: use application/json, text/xml or text/plain",
            },
            JSON,
            status=406,
        )
    except BodyError as exc:
        return error_answer(request, exc.reason, exc.status)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_answer(request, f"Body too large: {exc.text}", 413)
    except web.HTTPMethodNotAllowed as exc:
        response = error_answer(request, f"Method {request.method} not allowed", 405)
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_answer(request, exc.reason, exc.status)
    except (SQLAlchemyError, NotFound) as exc:
        logger.warning("answering 503: %s", exc)
        return error_answer(request, "Service unavailable, try again later", 503)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return error_answer(request, "Internal error", 500)
