"""One HTTP attempt with aiohttp: one client session per process, a hard total timeout.

Every in-flight request is a coroutine on the worker's event loop, so a slow buyer costs
an open socket, not a thread. Keep-alive connections are pooled per recipient host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
import yarl

from shared.outbound.request import OutgoingRequest
from shared.redact import request_secrets, scrub

MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = "leadflow"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None  # None: no answer (connection error, timeout, a request refused)
    content_type: str | None
    body: bytes
    ms: int
    error: str | None  # secrets the request carried are masked in it
    secrets: tuple[str, ...] = ()
    retryable: bool = True  # False: no answer will ever come (a redirect loop, a bad URL)

    def excerpt(self, chars: int) -> str:
        """The start of the body as text to record, the request's secrets masked."""
        # Cut after masking (with room for the longest secret), so a secret straddling
        # the cut is masked too.
        room = chars + max((len(secret) for secret in self.secrets), default=0) + 256
        return scrub(self.body[:room].decode("utf-8", "replace"), self.secrets)[:chars]


def client_session(concurrency: int) -> aiohttp.ClientSession:
    """The process's HTTP client: up to ``concurrency`` connections, no proxy from the
    environment, redirects followed by each request, no cookies kept (one lead's cookie
    is never sent with another's)."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, ttl_dns_cache=60)
    return aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    )


def url_problem(url: str) -> str | None:
    """Why ``url`` (as its templates filled it in) can never be requested, or None (the
    URL itself is left out: it may carry a password)."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
    if parsed.scheme not in ("http", "https"):
        return "not http or https"
    host = parsed.raw_host or ""
    if not host or any(c.isspace() or c in _NOT_IN_HOSTS for c in host):
        return "no valid host"
    return None


_NOT_IN_HOSTS = frozenset('<>"{}|\\^`%/?#@')


async def send(http: aiohttp.ClientSession, request: OutgoingRequest, timeout: float) -> Answer:
    started = time.monotonic()
    problem = url_problem(request.url)
    if problem is not None:
        # a URL a template made invalid: no request is made, and retrying cannot help
        return Answer(None, None, b"", 0, f"Invalid URL ({problem})", (), retryable=False)
    headers = {"User-Agent": USER_AGENT, **request.headers}
    auth = aiohttp.BasicAuth(*request.auth) if request.auth else None
    secrets = request_secrets(request.url, request.headers, request.auth)
    try:
        async with http.request(
            request.method,
            request.url,
            data=request.body if request.body else None,
            headers=headers,
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=True,
        ) as response:
            body = await _read_capped(response)
            content_type = response.headers.get("Content-Type")
            return Answer(response.status, content_type, body, _ms(started), None, secrets)
    except TimeoutError:
        return Answer(None, None, b"", _ms(started), f"Timed out after {timeout:g}s", secrets)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
        error = scrub(f"Connection error: {_short(exc)}", secrets)
        return Answer(None, None, b"", _ms(started), error, secrets)
    except (aiohttp.ClientError, ValueError) as exc:
        # not a connection error, a timeout or a 5xx (SPEC 5): retrying cannot help
        error = scrub(f"Request failed ({type(exc).__name__}): {_short(exc)}", secrets)
        return Answer(None, None, b"", _ms(started), error, secrets, retryable=False)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The body up to MAX_BODY_BYTES (a buyer's answer is small; more is cut off)."""
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY_BYTES:
        chunk = await response.content.read(MAX_BODY_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


def transient_reason(answer: Answer, on_status: list[int]) -> str | None:
    """Why an answer is worth retrying (no answer yet, a 5xx, a listed status), or None."""
    if answer.status is None:
        return (answer.error or "No answer") if answer.retryable else None
    if 500 <= answer.status <= 599:
        return f"Server error (HTTP {answer.status})"
    if answer.status in on_status:
        return f"HTTP {answer.status}"
    return None
