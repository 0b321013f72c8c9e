"""Who is asking: signed session cookies, CSRF tokens, roles, and a brake on guessing.

A session is ``user id . issued . csrf token . signature`` in an HttpOnly, SameSite=Strict
cookie, signed with HMAC-SHA256 under the console's secret; the user's role is read from
the database on each request, so removing a user or changing a role takes effect at
once. Every form that changes something carries the session's CSRF token, compared in
constant time. Failed logins from one address are limited (``LoginBrake``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from shared.users import Person

COOKIE = "leadflow_console"
SESSION_SECONDS = 12 * 3600
#: Failed logins one address may make in ``BRAKE_WINDOW`` seconds before it waits.
BRAKE_FAILURES = 5
BRAKE_WINDOW = 300.0
#: Paths anyone may ask for (the login page itself, the style sheet, the probes).
OPEN_PATHS = ("/login", "/static/", "/healthz", "/readyz", "/metrics")


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    issued: int
    csrf: str


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, user_id: str) -> tuple[str, Session]:
        session = Session(user_id, int(time.time()), secrets.token_urlsafe(24))
        payload = f"{session.user_id}.{session.issued}.{session.csrf}"
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or cookie.count(".") != 3:
            return None
        user_id, issued, csrf, signature = cookie.split(".")
        if not hmac.compare_digest(self._sign(f"{user_id}.{issued}.{csrf}"), signature):
            return None
        if not issued.isdigit() or time.time() - int(issued) > SESSION_SECONDS:
            return None
        return Session(user_id, int(issued), csrf)


class LoginBrake:
    """Failed logins by address: after ``BRAKE_FAILURES`` within ``BRAKE_WINDOW`` seconds
    the address is refused until the oldest of them leaves the window."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and now - failures[0] > BRAKE_WINDOW:
            failures.popleft()
        return failures

    def wait_seconds(self, address: str) -> float:
        now = time.monotonic()
        failures = self._recent(address, now)
        if len(failures) < BRAKE_FAILURES:
            return 0.0
        return BRAKE_WINDOW - (now - failures[0])

    def failed(self, address: str) -> None:
        self._recent(address, time.monotonic()).append(time.monotonic())
        if len(self._failures) > 10_000:  # forget the quiet addresses
            for quiet in [a for a, f in self._failures.items() if not f][:5_000]:
                del self._failures[quiet]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


SIGNER = web.AppKey("signer", Signer)
BRAKE = web.AppKey("login_brake", LoginBrake)
PERSON = "person"  # request key: the signed-in Person
SESSION = "session"  # request key: the Session


def set_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def middleware(people: Callable[[str], Awaitable[Person | None]]) -> Callable[..., object]:
    """Every page needs a signed-in user; every POST the session's CSRF token."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(OPEN_PATHS):
            return await handler(request)
        session = request.app[SIGNER].read(request.cookies.get(COOKIE))
        person = await people(session.user_id) if session is not None else None
        if session is None or person is None:
            if request.method != "GET":
                raise web.HTTPForbidden(text="Sign in first")
            raise web.HTTPFound("/login")
        if request.method == "POST":
            form = await request.post()
            token = form.get("csrf")
            if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
                raise web.HTTPForbidden(text="This form has expired or did not come from here")
        request[PERSON] = person
        request[SESSION] = session
        return await handler(request)

    return authenticate


def operator(request: web.Request) -> Person:
    """The signed-in person, who must be an operator to act (a viewer: 403)."""
    person: Person = request[PERSON]
    if not person.may_act:
        raise web.HTTPForbidden(text="Viewers cannot change anything")
    return person
