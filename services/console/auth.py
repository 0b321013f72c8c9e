"""Who is asking: signed session cookies, CSRF tokens, roles, and a brake on guessing.

A session is ``user id . issued . csrf token . signature`` in an HttpOnly, SameSite=Strict
cookie, signed with HMAC-SHA256 under the console's secret; the user's role is read from
the database on each request, so removing a user or changing a role takes effect at
once. Every form that changes something carries the session's CSRF token, compared in
constant time (the hidden field ``csrf_token``). Failed logins for one user name are
limited (``LoginBrake``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from shared.users import Person

COOKIE = "leadflow_console"
LOGIN_COOKIE = "leadflow_login"  # the sign-in form's CSRF token, before any session
SESSION_SECONDS = 12 * 3600
#: Failed logins in a row one user name may have; the next ones are answered 429 until
#: ``BRAKE_WINDOW`` seconds after the last failure (or a success).
BRAKE_FAILURES = 10
BRAKE_WINDOW = 900.0
CSRF_FIELD = "csrf_token"
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
    """Failed logins in a row by user name (whatever the address: guessing one account's
    password from many addresses is braked too): after ``BRAKE_FAILURES`` the name is
    refused until ``BRAKE_WINDOW`` seconds after its last failure; a success resets it."""

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}  # name: (in a row, last at)

    @staticmethod
    def _key(name: str) -> str:
        return name.strip().casefold()[:200]

    def wait_seconds(self, name: str) -> float:
        count, last = self._failures.get(self._key(name), (0, 0.0))
        if count < BRAKE_FAILURES:
            return 0.0
        return max(0.0, BRAKE_WINDOW - (time.monotonic() - last))

    def failed(self, name: str) -> None:
        now = time.monotonic()
        count, last = self._failures.get(self._key(name), (0, now))
        if now - last > BRAKE_WINDOW:
            count = 0  # the earlier ones were long ago: a new row
        self._failures[self._key(name)] = (count + 1, now)
        if len(self._failures) > 10_000:  # forget the names not tried for a while
            old = [n for n, (_, at) in self._failures.items() if now - at > BRAKE_WINDOW]
            for quiet in old[:5_000]:
                del self._failures[quiet]

    def succeeded(self, name: str) -> None:
        self._failures.pop(self._key(name), None)


SIGNER = web.AppKey("signer", Signer)
BRAKE = web.AppKey("login_brake", LoginBrake)
PERSON = "person"  # request key: the signed-in Person
SESSION = "session"  # request key: the Session


def login_token(request: web.Request) -> str:
    """The sign-in form's CSRF token: the one its cookie already holds, or a new one (the
    form and the cookie carry the same; no other site can post both)."""
    held = request.cookies.get(LOGIN_COOKIE, "")
    return held if 20 <= len(held) <= 64 else secrets.token_urlsafe(24)


def set_login_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/login",
    )


def login_token_ok(request: web.Request, token: object) -> bool:
    """The form's token matches its cookie; or the sign-in comes from a client that is no
    browser (a script: no token, no cookie and no ``Origin``), which no other site can
    make post (a browser sends ``Origin`` with every cross-site POST)."""
    held = request.cookies.get(LOGIN_COOKIE)
    if isinstance(token, str) and held and hmac.compare_digest(token, held):
        return True
    return token is None and held is None and "Origin" not in request.headers


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
            raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
        if request.method == "POST":
            form = await request.post()
            token = form.get(CSRF_FIELD)
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


def local_target(target: str | None) -> str:
    """Where to go after signing in: a path of this console only (never another host)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target
