"""Where a person is: postal codes (US ZIP, Canadian, UK) and states or provinces."""

from __future__ import annotations

import re

from shared.fields.value import Parsed, Parser

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


PARSERS: dict[str, Parser] = {
    "postal_code": _parse_postal_code,
    "state": _parse_state,
}
