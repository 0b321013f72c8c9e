"""Keeping secrets out of logs and records: passwords in URLs, and the credentials a
request carried (basic auth, key-like headers and query parameters) wherever a
recipient's answer or an error message repeats them."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
#: Header and query parameter names whose values are credentials.
SENSITIVE_NAME = re.compile(
    r"auth|key|token|secret|pass|session|cookie|signature|credential", re.IGNORECASE
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@", re.IGNORECASE)
#: Shorter values are not masked: they would blank out ordinary words.
_MIN_SECRET_CHARS = 4


def url_without_password(text: str) -> str:
    """``amqp://user:s3cret@host`` becomes ``amqp://user:***@host``, anywhere in ``text``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)


def request_secrets(
    url: str, headers: Mapping[str, str], auth: tuple[str, str] | None
) -> tuple[str, ...]:
    """The credential values a request carries, longest first."""
    values: set[str] = set()
    if auth is not None and auth[1]:
        values.add(auth[1])
        values.add(base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    for name, value in headers.items():
        if SENSITIVE_NAME.search(name) and value:
            values.add(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.isalpha():
                values.add(credential)  # "Bearer <token>": the token alone
    parts = urlsplit(url)
    if parts.password:
        values.add(parts.password)
    for name, value in parse_qsl(parts.query):
        if SENSITIVE_NAME.search(name) and value:
            values.add(value)
    return tuple(sorted((v for v in values if len(v) >= _MIN_SECRET_CHARS), key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret and every URL password masked."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return url_without_password(text)
