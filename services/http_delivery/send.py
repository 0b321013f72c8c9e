"""One HTTP attempt with requests: a pooled session per worker thread, a hard timeout."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from services.http_delivery.request import OutgoingRequest

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None  # None: no answer (connection error, timeout)
    content_type: str | None
    body: bytes
    ms: int
    error: str | None


class Sessions:
    """A ``requests.Session`` per worker thread: keep-alive pools per recipient host."""

    def __init__(self, pool_maxsize: int = 16) -> None:
        self._local = threading.local()
        self._pool_maxsize = pool_maxsize

    def get(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(
                pool_connections=32, pool_maxsize=self._pool_maxsize, max_retries=0
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.trust_env = False
            self._local.session = session
        return session


def send(session: requests.Session, request: OutgoingRequest, timeout: float) -> Answer:
    started = time.monotonic()
    try:
        response = session.request(
            request.method,
            request.url,
            data=request.body,
            headers=request.headers,
            auth=request.auth,
            timeout=timeout,
            allow_redirects=True,
            stream=True,
        )
        try:
            body = response.raw.read(MAX_BODY_BYTES, decode_content=True) or b""
        finally:
            response.close()
    except requests.Timeout:
        return Answer(None, None, b"", _ms(started), f"Timed out after {timeout:g}s")
    except requests.ConnectionError as exc:
        return Answer(None, None, b"", _ms(started), f"Connection error: {_short(exc)}")
    except requests.RequestException as exc:
        return Answer(None, None, b"", _ms(started), f"Request failed: {_short(exc)}")
    return Answer(
        response.status_code, response.headers.get("Content-Type"), body, _ms(started), None
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def transient_reason(answer: Answer, on_status: list[int]) -> str | None:
    """Why an answer is worth retrying (no answer, a 5xx, a listed status), or None."""
    if answer.status is None:
        return answer.error or "No answer"
    if answer.status >= 500:
        return f"Server error (HTTP {answer.status})"
    if answer.status in on_status:
        return f"HTTP {answer.status}"
    return None
