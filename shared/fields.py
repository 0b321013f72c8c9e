"""Field types: parse a submitted value into its normal form, validity and components.

LeadConduit's types are the reference. Parsing never raises for a bad value: the value is
kept with ``valid=False`` so that rules can test it. Only an unknown type name raises.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

FIELD_TYPES: frozenset[str] = frozenset(
    {
        "string",
        "first_name",
        "last_name",
        "city",
        "phone",
        "email",
        "postal_code",
        "state",
        "boolean",
        "number",
        "range",
        "gender",
        "date",
        "dob",
        "url",
        "ip",
    }
)

Raw = str | list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldValue:
    """A parsed field: what was submitted, whether it is valid, its normal form, its parts."""

    type: str
    raw: Raw
    valid: bool
    normal: Any
    components: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.valid and self.normal is not None:
            return to_text(self.normal)
        return to_text(self.raw)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "raw": self.raw,
            "valid": self.valid,
            "normal": self.normal,
            "components": dict(self.components),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FieldValue:
        raw = data.get("raw", "")
        if not isinstance(raw, str | list | dict):
            raw = to_text(raw)
        return cls(
            type=str(data["type"]),
            raw=raw,
            valid=bool(data.get("valid", False)),
            normal=data.get("normal"),
            components=dict(data.get("components") or {}),
        )


def to_text(value: Any) -> str:
    """The text a template or a file cell shows for a value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def parse_field(type_name: str, raw: Any) -> FieldValue:
    """Parse ``raw`` as the field type ``type_name``; ValueError for an unknown type."""
    parser = _PARSERS.get(type_name)
    if parser is None:
        raise ValueError(f"unknown field type {type_name!r}")
    submitted = _submitted(raw)
    if not isinstance(submitted, str):
        return FieldValue(type_name, submitted, False, None, {})
    text = submitted.strip()
    if not text:
        return FieldValue(type_name, submitted, False, None, {})
    parsed = parser(text)
    if parsed is None:
        return FieldValue(type_name, submitted, False, None, {})
    normal, components = parsed
    return FieldValue(type_name, submitted, True, normal, components)


def _submitted(raw: Any) -> Raw:
    if isinstance(raw, FieldValue):
        return raw.raw
    if isinstance(raw, str | list | dict):
        return raw
    if isinstance(raw, tuple):
        return list(raw)
    if isinstance(raw, Mapping):
        return dict(raw)
    return to_text(raw)


Parsed = tuple[Any, dict[str, Any]] | None


# -- text ---------------------------------------------------------------------------------


def _parse_text(text: str) -> Parsed:
    return text, {}


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


# -- postal code --------------------------------------------------------------------------

_US_ZIP = re.compile(r"^(\d{5})(?:[\s-]*(\d{4}))?$")
_CA_POSTAL = re.compile(
    r"^([ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z])[\s-]*(\d[ABCEGHJ-NPRSTV-Z]\d)$", re.IGNORECASE
)
_GB_POSTCODE = re.compile(
    r"^(GIR|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRVWXY\d]?))"
    r"\s*(\d[ABD-HJLNP-UW-Z]{2})$",
    re.IGNORECASE,
)


def _parse_postal_code(text: str) -> Parsed:
    us = _US_ZIP.match(text)
    if us is not None:
        zip_code, four = us.group(1), us.group(2)
        normal = f"{zip_code}-{four}" if four else zip_code
        return normal, {"country_code": "US", "code": normal, "zip": zip_code, "four": four}
    for country, pattern in (("CA", _CA_POSTAL), ("GB", _GB_POSTCODE)):
        match = pattern.match(text)
        if match is not None:
            normal = f"{match.group(1)} {match.group(2)}".upper()
            if country == "GB" and match.group(1).upper() == "GIR" and normal != "GIR 0AA":
                return None
            return normal, {"country_code": country, "code": normal, "zip": None, "four": None}
    return None


# -- state --------------------------------------------------------------------------------

STATE_NAMES: dict[str, str] = {
    "AL": "Alabama",
    "AK": "Alaska",
    "AZ": "Arizona",
    "AR": "Arkansas",
    "CA": "California",
    "CO": "Colorado",
    "CT": "Connecticut",
    "DE": "Delaware",
    "DC": "District of Columbia",
    "FL": "Florida",
    "GA": "Georgia",
    "HI": "Hawaii",
    "ID": "Idaho",
    "IL": "Illinois",
    "IN": "Indiana",
    "IA": "Iowa",
    "KS": "Kansas",
    "KY": "Kentucky",
    "LA": "Louisiana",
    "ME": "Maine",
    "MD": "Maryland",
    "MA": "Massachusetts",
    "MI": "Michigan",
    "MN": "Minnesota",
    "MS": "Mississippi",
    "MO": "Missouri",
    "MT": "Montana",
    "NE": "Nebraska",
    "NV": "Nevada",
    "NH": "New Hampshire",
    "NJ": "New Jersey",
    "NM": "New Mexico",
    "NY": "New York",
    "NC": "North Carolina",
    "ND": "North Dakota",
    "OH": "Ohio",
    "OK": "Oklahoma",
    "OR": "Oregon",
    "PA": "Pennsylvania",
    "RI": "Rhode Island",
    "SC": "South Carolina",
    "SD": "South Dakota",
    "TN": "Tennessee",
    "TX": "Texas",
    "UT": "Utah",
    "VT": "Vermont",
    "VA": "Virginia",
    "WA": "Washington",
    "WV": "West Virginia",
    "WI": "Wisconsin",
    "WY": "Wyoming",
    "AS": "American Samoa",
    "GU": "Guam",
    "MP": "Northern Mariana Islands",
    "PR": "Puerto Rico",
    "VI": "U.S. Virgin Islands",
    "AB": "Alberta",
    "BC": "British Columbia",
    "MB": "Manitoba",
    "NB": "New Brunswick",
    "NL": "Newfoundland and Labrador",
    "NS": "Nova Scotia",
    "NT": "Northwest Territories",
    "NU": "Nunavut",
    "ON": "Ontario",
    "PE": "Prince Edward Island",
    "QC": "Quebec",
    "SK": "Saskatchewan",
    "YT": "Yukon",
}
_STATE_ALIASES = {
    "washington dc": "DC",
    "washington d c": "DC",
    "virgin islands": "VI",
    "us virgin islands": "VI",
    "newfoundland": "NL",
    "labrador": "NL",
    "québec": "QC",
    "yukon territory": "YT",
    "pei": "PE",
}


def _state_key(text: str) -> str:
    return " ".join(text.replace(".", " ").lower().split())


_STATE_CODES: dict[str, str] = {
    **{_state_key(name): code for code, name in STATE_NAMES.items()},
    **{code.lower(): code for code in STATE_NAMES},
    **_STATE_ALIASES,
}


def _parse_state(text: str) -> Parsed:
    key = _state_key(text)
    code = _STATE_CODES.get(key) or _STATE_CODES.get(key.replace(" ", ""))
    if code is None:
        return text, {"name": None}
    return code, {"name": STATE_NAMES[code]}


# -- boolean ------------------------------------------------------------------------------

TRUE_WORDS = frozenset({"y", "yes", "true", "t", "1"})
FALSE_WORDS = frozenset({"n", "no", "false", "f", "0"})


def _parse_boolean(text: str) -> Parsed:
    word = text.lower()
    if word in TRUE_WORDS:
        return True, {}
    if word in FALSE_WORDS:
        return False, {}
    return None


# -- number and range ---------------------------------------------------------------------

_NUMBER_NOISE = re.compile(r"[\s,$€£¥]")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def parse_number(text: str) -> int | float | None:
    """``"$100,000.00"`` -> 100000: currency symbols, commas and spaces dropped; else None."""
    cleaned = _NUMBER_NOISE.sub("", text)
    if not _NUMBER.match(cleaned):
        return None
    return _number_of(Decimal(cleaned))


def _number_of(value: Decimal) -> int | float:
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _parse_number(text: str) -> Parsed:
    number = parse_number(text)
    if number is None:
        return None
    return number, {}


_RANGE_NUMBER = r"(-?(?:\d+(?:\.\d*)?|\.\d+))"
_RANGE_OPEN = re.compile(rf"^{_RANGE_NUMBER}\s*\+$")
_RANGE_CLOSED = re.compile(
    rf"^{_RANGE_NUMBER}\s*(?:-|\u2013|\u2014|to|thru|through)\s*{_RANGE_NUMBER}$", re.IGNORECASE
)
_RANGE_SINGLE = re.compile(rf"^{_RANGE_NUMBER}$")
_RANGE_NOISE = re.compile(r"[,$€£¥]")


def _parse_range(text: str) -> Parsed:
    cleaned = _RANGE_NOISE.sub("", text).strip()
    match = _RANGE_OPEN.match(cleaned)
    if match is not None:
        floor = _number_of(Decimal(match.group(1)))
        return f"{floor}+", {"min": floor, "max": None, "mid": None, "avg": None}
    match = _RANGE_CLOSED.match(cleaned)
    if match is not None:
        low, high = sorted(Decimal(group) for group in match.groups())
        average = (low + high) / 2
        return f"{_number_of(low)}-{_number_of(high)}", {
            "min": _number_of(low),
            "max": _number_of(high),
            "mid": math.floor(average),
            "avg": _number_of(round(average, 2)),
        }
    match = _RANGE_SINGLE.match(cleaned)
    if match is not None:
        value = _number_of(Decimal(match.group(1)))
        return str(value), {"min": value, "max": value, "mid": value, "avg": value}
    return None


# -- gender -------------------------------------------------------------------------------

_GENDERS = {
    **dict.fromkeys(("m", "male", "man", "boy"), "male"),
    **dict.fromkeys(("f", "female", "woman", "girl"), "female"),
    **dict.fromkeys(("o", "other", "x", "nb", "nonbinary", "non-binary", "non binary"), "other"),
}
_GENDER_ABBREVIATIONS = {"male": "M", "female": "F", "other": "O"}


def _parse_gender(text: str) -> Parsed:
    gender = _GENDERS.get(" ".join(text.lower().split()))
    if gender is None:
        return None
    return gender, {"abbr": _GENDER_ABBREVIATIONS[gender]}


# -- date and dob -------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_DATE_US = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})$")
_DATE_YMD = re.compile(r"^(\d{4})[/.-](\d{1,2})[/.-](\d{1,2})$")
_DATE_MONTH_FIRST = re.compile(
    r"^([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$", re.IGNORECASE
)
_DATE_DAY_FIRST = re.compile(
    r"^(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?,?\s+(\d{4})$", re.IGNORECASE
)


def _today() -> date:
    """Today in UTC; the one clock the dob type reads (tests replace it)."""
    return datetime.now(UTC).date()


def parse_date(text: str, *, latest_year: int | None = None) -> date | None:
    """ISO 8601, US M/D/YYYY, YYYY/MM/DD and "Jan 2 2020" / "2 January 2020" forms.

    A two-digit year is put in the latest century that keeps it at or before
    ``latest_year`` (default: ten years from now).
    """
    text = text.strip()
    if latest_year is None:
        latest_year = _today().year + 10
    try:
        if len(text) >= 8 and text[:4].isdigit():
            return datetime.fromisoformat(text).date()
    except ValueError:
        pass
    year: int
    month: int
    day: int
    if match := _DATE_US.match(text):
        month, day = int(match.group(1)), int(match.group(2))
        year = _expand_year(match.group(3), latest_year)
    elif match := _DATE_YMD.match(text):
        year, month, day = (int(group) for group in match.groups())
    elif match := _DATE_MONTH_FIRST.match(text):
        found = _MONTHS.get(match.group(1).lower())
        if found is None:
            return None
        year, month, day = int(match.group(3)), found, int(match.group(2))
    elif match := _DATE_DAY_FIRST.match(text):
        found = _MONTHS.get(match.group(2).lower())
        if found is None:
            return None
        year, month, day = int(match.group(3)), found, int(match.group(1))
    else:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _expand_year(digits: str, latest_year: int) -> int:
    if len(digits) == 4:
        return int(digits)
    return latest_year - (latest_year - int(digits)) % 100


def _date_components(value: date) -> dict[str, Any]:
    return {"year": value.year, "month": value.month, "day": value.day}


def _parse_date(text: str) -> Parsed:
    value = parse_date(text)
    if value is None:
        return None
    return value.isoformat(), _date_components(value)


def _parse_dob(text: str) -> Parsed:
    today = _today()
    value = parse_date(text, latest_year=today.year)
    if value is None or value > today:
        return None
    age = today.year - value.year - ((today.month, today.day) < (value.month, value.day))
    return value.isoformat(), {**_date_components(value), "age": age}


# -- url and ip ---------------------------------------------------------------------------

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


_PARSERS: dict[str, Callable[[str], Parsed]] = {
    "string": _parse_text,
    "first_name": _parse_text,
    "last_name": _parse_text,
    "city": _parse_text,
    "phone": _parse_phone,
    "email": _parse_email,
    "postal_code": _parse_postal_code,
    "state": _parse_state,
    "boolean": _parse_boolean,
    "number": _parse_number,
    "range": _parse_range,
    "gender": _parse_gender,
    "date": _parse_date,
    "dob": _parse_dob,
    "url": _parse_url,
    "ip": _parse_ip,
}
