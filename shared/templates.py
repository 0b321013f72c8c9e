"""Templates: ``{{ path }}`` placeholders filled from the variables by dot path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.fields import to_text
from shared.rules import resolve

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def is_template(text: str) -> bool:
    """Whether the text holds at least one ``{{ path }}`` placeholder."""
    return _PLACEHOLDER.search(text) is not None


def unclosed(text: str) -> bool:
    """Whether ``{{`` stands in the text outside every placeholder (a typo: it would be
    sent as written)."""
    return "{{" in _PLACEHOLDER.sub("", text)


def render(template: str, variables: Mapping[str, Any]) -> str:
    """The template with every placeholder replaced by its value's text ("" when missing).

    A field renders as its normal value when valid, else as what was submitted; booleans
    as ``true``/``false``; integral floats without ``.0``; lists and mappings as JSON.
    """
    return _PLACEHOLDER.sub(lambda match: to_text(resolve(variables, match.group(1))), template)


def render_value(template: str, variables: Mapping[str, Any]) -> Any:
    """The value itself when the template is exactly one placeholder, else ``render``.

    Keeps numbers, booleans and FieldValues unconverted so structured output (JSON) can
    keep their types; a missing value is None.
    """
    match = _PLACEHOLDER.fullmatch(template)
    if match is not None:
        return resolve(variables, match.group(1))
    return render(template, variables)
