"""Rule sets: ``{lhv, op, rhv}`` rules combined by ``and``/``or``, evaluated over variables.

``variables`` is a nested mapping (``{"lead": {...}, "acme": {...}, "event": {...}}``);
``lhv`` is a dot path into it (see ``resolve``), ``rhv`` a literal. Comparisons are
case-insensitive, numeric when both sides are numbers, and typed by the left side when it
is a parsed field (``lead.state is equal to Texas`` matches ``TX``): each operator's
meaning is in ``shared.comparisons``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from shared.comparisons import NEGATIONS, OPERATIONS
from shared.fields import FieldValue

OPERATORS: tuple[str, ...] = (
    "is equal to",
    "is not equal to",
    "is less than",
    "is less than or equal to",
    "is greater than",
    "is greater than or equal to",
    "is between",
    "is not between",
    "is blank",
    "is not blank",
    "format is valid",
    "format is invalid",
    "includes",
    "does not include",
    "is included in",
    "is not included in",
    "matches pattern",
    "does not match pattern",
    "is true",
    "is false",
)
_BETWEEN = frozenset({"is between", "is not between"})


class Rule(BaseModel):
    """One test: the value at ``lhv`` compared by ``op`` with the literal ``rhv``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lhv: str
    op: str
    rhv: Any = Field(default=None, validate_default=True)

    @field_validator("op", mode="before")
    @classmethod
    def _known_operator(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        op = " ".join(value.lower().split())
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {value!r}")
        return op

    @field_validator("rhv")
    @classmethod
    def _between_takes_two(cls, value: Any, info: ValidationInfo) -> Any:
        op = info.data.get("op")
        if op in _BETWEEN and not (isinstance(value, list | tuple) and len(value) == 2):
            raise ValueError(f"{op} takes a two-item list [low, high]")
        return value


def _rule_or_rule_set(value: Any) -> Any:
    """Pick the model by shape, so errors point at the item's own fields."""
    if isinstance(value, Rule | RuleSet):
        return value
    if isinstance(value, Mapping) and "rules" in value:
        return RuleSet.model_validate(value)
    return Rule.model_validate(value)


class RuleSet(BaseModel):
    """Rules (or nested rule sets) combined by ``op``; an empty rule set matches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["and", "or"] = "and"
    rules: list[Annotated[Rule | RuleSet, BeforeValidator(_rule_or_rule_set)]] = []


# -- resolving paths ----------------------------------------------------------------------

_FIELD_ATTRIBUTES = frozenset({"type", "raw", "valid", "normal"})
_MISSING = object()


def resolve(variables: Mapping[str, Any], path: str) -> Any:
    """The value at a dot path, or None when it is missing.

    Walks mappings, lists (numeric index) and FieldValues (their components such as
    ``area``, then ``valid``, ``raw``, ``normal`` and ``type``). Keys may themselves
    contain dots: at each level the longest dotted key that exists is tried first.
    """
    parts = path.strip().split(".")
    if not parts or not all(parts):
        return None
    found = _walk(variables, parts)
    return None if found is _MISSING else found


def _walk(value: Any, parts: Sequence[str]) -> Any:
    if not parts:
        return value
    for length in range(len(parts), 0, -1):
        child = _child(value, ".".join(parts[:length]))
        if child is _MISSING:
            continue
        found = _walk(child, parts[length:])
        if found is not _MISSING:
            return found
    return _MISSING


def _child(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    if isinstance(value, FieldValue):
        if key in value.components:  # a component first: a phone's ``type`` is home, cell...
            return value.components[key]
        return getattr(value, key) if key in _FIELD_ATTRIBUTES else _MISSING
    if isinstance(value, list | tuple) and key.isdigit():
        index = int(key)
        return value[index] if index < len(value) else _MISSING
    return _MISSING


# -- evaluating ---------------------------------------------------------------------------


def evaluate(rule_set: RuleSet, variables: Mapping[str, Any]) -> bool:
    """Whether the rule set matches: all rules for ``and``, any for ``or``; empty matches."""
    if not rule_set.rules:
        return True
    results = (
        evaluate(item, variables) if isinstance(item, RuleSet) else evaluate_rule(item, variables)
        for item in rule_set.rules
    )
    return all(results) if rule_set.op == "and" else any(results)


def evaluate_rule(rule: Rule, variables: Mapping[str, Any]) -> bool:
    """Whether one rule holds for the variables."""
    lhv = resolve(variables, rule.lhv)
    op = rule.op
    negated = op in NEGATIONS
    if negated:
        op = NEGATIONS[op]
    result = OPERATIONS[op](lhv, rule.rhv)
    return not result if negated else result
