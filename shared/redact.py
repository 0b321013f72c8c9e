"""Keeping secrets out of logs and records: passwords in URLs, and the credentials a
request carried (basic auth, key-like headers and query parameters) wherever a
recipient's answer or an error message repeats them."""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
#: Words that make a header or query parameter name a credential's (``X-Api-Key``,
#: ``Authorization``, ``access_token``, ``client-secret``), matched as whole words.
_SENSITIVE_WORDS = frozenset(
    {
        "auth",
        "authorization",
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "session",
        "cookie",
        "signature",
        "sig",
        "credential",
        "credentials",
    }
)
#: Names that contain such a word but carry no secret.
_NOT_SECRET = frozenset({"idempotency-key"})
# ``scheme://user:password@``: the password may hold ``@``, but not ``/``, ``?`` or ``#``.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@?#]*:)[^\s/?#]+@", re.IGNORECASE)
#: Shorter values are not masked: they would blank out ordinary words.
_MIN_SECRET_CHARS = 4


def url_without_password(text: str) -> str:
    """``amqp://user:s3cret@host`` becomes ``amqp://user:***@host``, anywhere in ``text``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)


@functools.lru_cache(maxsize=4096)
def is_sensitive(name: str) -> bool:
    """Whether a header or parameter name is a credential's."""
    lowered = name.lower()
    if lowered in _NOT_SECRET:
        return False
    return any(word in _SENSITIVE_WORDS for word in re.split(r"[^a-z0-9]+", lowered))


def request_secrets(
    url: str, headers: Mapping[str, str], auth: tuple[str, str] | None
) -> tuple[str, ...]:
    """The credential values a request carries, longest first."""
    values: set[str] = set()
    if auth is not None and auth[1]:
        values.add(auth[1])
        values.add(base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    for name, value in headers.items():
        if is_sensitive(name) and value:
            values.add(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.isalpha():
                values.add(credential)  # "Bearer <token>": the token alone
    parts = urlsplit(url)
    if parts.password:
        values.add(parts.password)
    for name, value in parse_qsl(parts.query):
        if is_sensitive(name) and value:
            values.add(value)
    return tuple(sorted((v for v in values if len(v) >= _MIN_SECRET_CHARS), key=len, reverse=True))


def scrub_value(value: Any, secrets: tuple[str, ...]) -> Any:
    """Every string inside ``value`` (mappings and lists walked) scrubbed."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, Mapping):
        return {k: scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, secrets) for v in value]
    return value


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret and every URL password masked."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return url_without_password(text)
