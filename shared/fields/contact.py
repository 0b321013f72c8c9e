"""Ways to reach a person: phone (US by default, ``(h)``/``(w)``/``(c)`` hints) and email."""

from __future__ import annotations

import re

import phonenumbers

from shared.fields.value import Parsed, Parser

# -- phone --------------------------------------------------------------------------------

_TOLL_FREE_AREAS = frozenset({"800", "833", "844", "855", "866", "877", "888"})
_PHONE_HINT = re.compile(r"\s*[(]?([hwcm])[)]?$", re.IGNORECASE)
_PHONE_HINTS = {"h": "home", "w": "work", "c": "mobile", "m": "mobile"}


def _parse_phone(text: str) -> Parsed:
    kind = None
    hint = _PHONE_HINT.search(text)
    if hint is not None and hint.start() > 0:
        kind = _PHONE_HINTS[hint.group(1).lower()]
        text = text[: hint.start()]
    try:
        number = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException:
        return None
    # The number's type once: UNKNOWN exactly when ``is_valid_number`` is false, and
    # what the toll-free test needs (each call runs the region's patterns again).
    number_type = phonenumbers.number_type(number)
    if number_type == phonenumbers.PhoneNumberType.UNKNOWN:
        return None
    national = phonenumbers.national_significant_number(number)
    area_length = phonenumbers.length_of_national_destination_code(number)
    area = national[:area_length] if area_length > 0 else None
    subscriber = national[area_length:]
    exchange = line = None
    if number.country_code == 1 and len(national) == 10:
        exchange, line = national[3:6], national[6:]
    extension = number.extension or None
    is_tollfree = (number.country_code == 1 and area in _TOLL_FREE_AREAS) or (
        number_type == phonenumbers.PhoneNumberType.TOLL_FREE
    )
    normal = f"{national}x{extension}" if extension else national
    return normal, {
        "area": area,
        "exchange": exchange,
        "line": line,
        "number": subscriber,
        "extension": extension,
        "country_code": phonenumbers.region_code_for_number(number),
        "is_tollfree": is_tollfree,
        "type": kind,
    }


# -- email --------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"^(?P<user>[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59}))$"
)
_FREE_EMAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.com",
        "gmx.net",
        "hotmail.com",
        "icloud.com",
        "live.com",
        "mac.com",
        "mail.com",
        "me.com",
        "msn.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "yahoo.com",
        "yandex.com",
        "ymail.com",
        "zoho.com",
    }
)
_DISPOSABLE_EMAIL_DOMAINS = frozenset(
    {
        "10minutemail.com",
        "discard.email",
        "dispostable.com",
        "getnada.com",
        "guerrillamail.com",
        "guerrillamail.net",
        "mailinator.com",
        "maildrop.cc",
        "mintemail.com",
        "sharklasers.com",
        "temp-mail.org",
        "tempmail.com",
        "tempmailo.com",
        "throwawaymail.com",
        "trashmail.com",
        "yopmail.com",
    }
)


def _parse_email(text: str) -> Parsed:
    normal = text.lower()
    match = _EMAIL.match(normal)
    if match is None:
        return None
    domain = match.group("domain")
    host, _, tld = domain.rpartition(".")
    return normal, {
        "user": match.group("user"),
        "domain": domain,
        "host": host,
        "tld": tld,
        "is_free": domain in _FREE_EMAIL_DOMAINS,
        "is_disposable": domain in _DISPOSABLE_EMAIL_DOMAINS,
    }


PARSERS: dict[str, Parser] = {
    "phone": _parse_phone,
    "email": _parse_email,
}
