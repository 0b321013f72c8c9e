"""Types read from words: text (string, names, city), boolean and gender."""

from __future__ import annotations

from shared.fields.value import Parsed, Parser

# -- text ---------------------------------------------------------------------------------


def _parse_text(text: str) -> Parsed:
    return text, {}


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


PARSERS: dict[str, Parser] = {
    "string": _parse_text,
    "first_name": _parse_text,
    "last_name": _parse_text,
    "city": _parse_text,
    "boolean": _parse_boolean,
    "gender": _parse_gender,
}
