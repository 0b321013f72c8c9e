"""Addresses on a network: URLs (http and https) and IP addresses."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from shared.fields.value import Parsed, Parser

_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?:{_HOST_LABEL}\.)*{_HOST_LABEL}$")


def _parse_url(text: str) -> Parsed:
    if any(character.isspace() for character in text):
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if not _HOST_NAME.match(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
    return text, {
        "scheme": parts.scheme.lower(),
        "host": host,
        "port": port,
        "path": parts.path,
        "query": parts.query,
    }


def _parse_ip(text: str) -> Parsed:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(address), {"version": address.version, "is_private": address.is_private}


PARSERS: dict[str, Parser] = {
    "url": _parse_url,
    "ip": _parse_ip,
}
