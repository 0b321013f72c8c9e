"""The operators' YAML file: recipients and flows, validated into typed models.

``load_config_text`` substitutes ``${NAME}`` from the environment, validates, checks
cross references and raises one ``ConfigError`` listing every problem with its path
(``flows.auto.steps[2].recipient: unknown recipient 'acmee'``).

Longer than 300 lines on purpose: it is the file's whole schema, one model per section
in the order the file is written, read top to bottom like the file itself, and its loader
needs the models' shapes to turn pydantic's errors into the file's own paths. Split by
section, a reader would follow one YAML file across several modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.config import known_zone
from shared.durations import format_duration, parse_duration
from shared.errors import ConfigError
from shared.fields import FIELD_TYPES
from shared.formats import dotpaths, xmlwrite
from shared.gates.caps import Cap
from shared.gates.hours import Schedule, check_zone
from shared.money.pricing import CostRule, Margin
from shared.rules import RuleSet
from shared.templates import unclosed


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise PydanticCustomError("duration", str(exc)) from None


Duration = Annotated[
    float, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)
]
Timeout = Annotated[Duration, Field(gt=0)]
Outcome = Literal["success", "failure", "error"]
TimeZone = Annotated[str, AfterValidator(check_zone)]

DEFAULT_RETRY_SCHEDULE = (10.0, 60.0, 300.0, 1800.0, 7200.0)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _zone_default(data: Any, info: ValidationInfo) -> Any:
    """A section without ``timezone`` takes the deployment's (``LEADFLOW_TIMEZONE``, given
    to validation as its context; without it the field's default, UTC)."""
    zone = (info.context or {}).get("timezone")
    if isinstance(data, dict) and zone and "timezone" not in data:
        return {**data, "timezone": zone}
    return data


def _http_url(value: str | None) -> str:
    if value is None or not value.strip():
        raise PydanticCustomError("url", "URL is required")
    if not re.match(r"^https?://[^/\s]+", value.strip(), re.IGNORECASE):
        raise PydanticCustomError("url", "URL must start with http:// or https://")
    _check_templates([value])
    return value.strip()


def _check_templates(values: Any) -> None:
    """A ``{{`` that opens no placeholder would be sent as it is written."""
    for text in values:
        if isinstance(text, str) and unclosed(text):
            problem = f"unclosed template in {text!r} (placeholders are {{{{ path }}}})"
            raise PydanticCustomError("template", "{problem}", {"problem": problem})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Model):
    schedule: list[Duration] = Field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    on_status: list[int] = Field(default_factory=list)


class ResponseRules(_Model):
    """How a recipient's answer is read (SPEC section 5, LeadConduit's custom integration)."""

    outcome_search_term: str | None = None
    outcome_search_path: str | None = None
    outcome_on_match: str | None = None
    reason_path: str | None = None
    default_reason: str | None = None
    price_path: str | None = None
    fallback_price: Decimal | None = None
    reference_path: str | None = None
    capture: dict[str, str] = Field(default_factory=dict)
    response_content_type_override: str | None = None

    @field_validator("outcome_on_match")
    @classmethod
    def _on_match(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() not in ("success", "failure", "error"):
            raise PydanticCustomError(
                "outcome_on_match", "Outcome on match must be 'success', 'failure', or 'error'"
            )
        return value.strip().lower() if value is not None else None

    @field_validator("capture")
    @classmethod
    def _capture(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise PydanticCustomError(
                    "capture",
                    "capture '{name}' is not a valid regex: {error}",
                    {"name": name, "error": str(exc)},
                ) from None
        return value


class HttpTarget(_Model):
    url: str | None = None
    method: str = "POST"
    format: Literal["form", "json", "xml"] = "json"
    fields: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    basic_username: str | None = None
    basic_password: str | None = None
    timeout: Timeout = 10.0
    response: ResponseRules = Field(default_factory=ResponseRules)
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in ("POST", "PUT", "PATCH", "GET"):
            raise PydanticCustomError("method", "Unsupported HTTP method")
        return value.upper()

    @field_validator("fields")
    @classmethod
    def _buildable(cls, value: dict[str, Any] | None, info: ValidationInfo) -> Any:
        """Every mapping can be built into the request its format makes (a JSON or XML
        body nests dot paths; an XML body has one root element)."""
        if value is None or info.data.get("method") == "GET":
            return value
        _check_templates(value.values())
        paths = {str(name): "" for name in value}
        try:
            if info.data.get("format") == "json":
                dotpaths.nest(paths.items(), arrays=True, strict=True)
            elif info.data.get("format") == "xml":
                xmlwrite.from_paths(paths, str, default_root="lead")
        except ValueError as exc:
            raise PydanticCustomError("fields", "{error}", {"error": str(exc)}) from None
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        _check_templates(value.values())
        return value

    @model_validator(mode="before")
    @classmethod
    def _url_required(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" not in data:
            return {**data, "url": None}
        return data


class PingTarget(HttpTarget):
    """How a buyer is pinged for a bid (SPEC section 12): a request built as for ``http``;
    its answer read with ``response`` (``price_path``: the bid, ``reference_path``: kept
    for the post as ``{{ping.reference}}``). A late answer is no bid; never retried."""

    timeout: Timeout = 1.0


class PingLimit(_Model):
    max: int = Field(ge=0)
    per: Literal["minute", "hour", "day"]


class PingSettings(_Model):
    ttl: Duration = 300.0  # a post may use the ping's quote this long
    dedupe: Duration = 600.0  # the same ping again within it: the first one's answer


class FileFormat(_Model):
    format: Literal["csv", "tsv"] = "csv"
    quote: bool = True
    header: bool = True


class EmailTarget(_Model):
    to: list[str]
    cc: list[str] = Field(default_factory=list)
    sender: str = "leadflow@localhost"
    subject: str | None = None
    mode: Literal["realtime", "batch"] = "realtime"
    schedule: str | None = None
    every: Duration | None = None
    timezone: TimeZone = "UTC"
    file: FileFormat = Field(default_factory=FileFormat)
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @model_validator(mode="before")
    @classmethod
    def _schedule_every(cls, data: Any) -> Any:
        """``schedule: {every: 1h}`` and ``schedule: "every 1h"`` are ``every: 1h``."""
        if not isinstance(data, dict) or "every" in data:
            return data
        schedule = data.get("schedule")
        if isinstance(schedule, dict) and set(schedule) == {"every"}:
            every = schedule["every"]
        elif isinstance(schedule, str) and schedule.strip().lower().startswith("every "):
            every = schedule.strip()[len("every ") :].strip()
        else:
            return data
        return {**{k: v for k, v in data.items() if k != "schedule"}, "every": every}

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        if not value:
            raise PydanticCustomError("to", "at least one address is required")
        for address in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
                raise PydanticCustomError("to", "'{a}' is not an email address", {"a": address})
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise PydanticCustomError("cron", "'{v}' is not a valid cron expression", {"v": value})
        return value

    @field_validator("every")
    @classmethod
    def _every(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise PydanticCustomError("every", "every must be a positive duration")
        return value

    @model_validator(mode="after")
    def _batch_needs_timing(self) -> EmailTarget:
        if self.mode == "batch" and (self.schedule is None) == (self.every is None):
            raise PydanticCustomError(
                "batch", "a batch recipient needs exactly one of 'schedule' (cron) or 'every'"
            )
        return self


class ManualTarget(_Model):
    file: FileFormat = Field(default_factory=FileFormat)


DuplicateKey = Annotated[list[str], Field(min_length=1)]


class RecipientDuplicates(_Model):
    """A recipient is never sent a lead that matches, by any of its keys, one it
    accepted within ``lookback`` (SPEC section 14)."""

    keys: list[DuplicateKey] = Field(default_factory=list)
    lookback: Duration = 30 * 86400.0


class Recipient(_Model):
    name: str | None = None
    http: HttpTarget | None = None
    email: EmailTarget | None = None
    manual: ManualTarget | None = None
    ping: PingTarget | None = None  # bids before it is posted the lead (auction steps)
    duplicates: RecipientDuplicates | None = None
    timezone: TimeZone = "UTC"
    caps: list[Cap] = Field(default_factory=list)
    schedule: Schedule | None = None
    when_closed: Literal["skip", "hold"] = "skip"

    @model_validator(mode="before")
    @classmethod
    def _zones(cls, data: Any, info: ValidationInfo) -> Any:
        """No zone given: the deployment's (``LEADFLOW_TIMEZONE``); an email recipient's
        batch schedule runs in the recipient's zone unless it names its own."""
        data = _zone_default(data, info)
        email = data.get("email") if isinstance(data, dict) else None
        if isinstance(email, dict) and "timezone" not in email and "timezone" in data:
            data = {**data, "email": {**email, "timezone": data["timezone"]}}
        return data

    price: Decimal | None = Field(default=None, ge=0)  # revenue when its answer has none

    @model_validator(mode="after")
    def _one_kind(self) -> Recipient:
        kinds = [k for k in ("http", "email", "manual") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise PydanticCustomError(
                "kind", "a recipient needs exactly one of 'http', 'email' or 'manual'"
            )
        return self

    @property
    def kind(self) -> str:
        if self.http is not None:
            return "http"
        if self.email is not None:
            return "email"
        return "manual"

    @property
    def leaves_pending(self) -> bool:
        """Its leads wait as pending, for a batch or a download (manual, batch email); the
        others are handed to a delivery worker at once."""
        return self.manual is not None or (self.email is not None and self.email.mode == "batch")


class FieldDef(_Model):
    type: str = "string"
    required: bool = False
    label: str | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in FIELD_TYPES:
            raise PydanticCustomError(
                "type",
                "unknown field type '{v}' (known: {known})",
                {"v": value, "known": ", ".join(sorted(FIELD_TYPES))},
            )
        return value


class ResponseMode(_Model):
    mode: Literal["after_flow", "on_receipt"] = "after_flow"
    timeout: Timeout = 10.0


class Criterion(_Model):
    rule_set: RuleSet
    reason: str | None = None


class SourceFeedback(_Model):
    url: str
    format: Literal["json", "form", "xml"] = "json"
    returns: bool = True
    conversions: bool = True
    headers: dict[str, str] = Field(default_factory=dict)
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str | None:
        return _http_url(value)


class Source(_Model):
    name: str | None = None
    api_key: str | None = None
    acceptance_criteria: list[Criterion] = Field(default_factory=list)
    feedback: SourceFeedback | None = None
    caps: list[Cap] = Field(default_factory=list)
    cost: Decimal | None = Field(default=None, ge=0)  # paid for each accepted lead
    cost_rules: list[CostRule] = Field(default_factory=list)  # the last matching one wins
    chargeback_returns: bool = False  # an approved return reverses the source's cost
    margin: Margin | None = None  # overrides the flow's
    min_price: Decimal | None = Field(default=None, ge=0)  # a ping quote below it: no bid
    ping_limits: list[PingLimit] = Field(default_factory=list)


class FilterStep(_Model):
    name: str | None = None
    rule_set: RuleSet = Field(default_factory=RuleSet)
    outcome: Outcome = "failure"
    reason: str | None = None


class ReturnsFeedback(_Model):
    enabled: bool = False
    max_lead_age_days: float | None = Field(default=None, ge=0)  # 0 refuses every return
    reasons: list[str] | None = None
    reason_map: dict[str, str] = Field(default_factory=dict)
    approval: Literal["auto", "manual"] = "auto"  # manual: `leadflow returns approve|reject`
    max_percent: float | None = Field(default=None, ge=0, le=100)  # of a month's purchases


class ConversionsFeedback(_Model):
    enabled: bool = False


class StepFeedback(_Model):
    returns: ReturnsFeedback = Field(default_factory=ReturnsFeedback)
    conversions: ConversionsFeedback = Field(default_factory=ConversionsFeedback)


class Bidder(_Model):
    recipient: str
    criteria: RuleSet | None = None


def _bidder(value: Any) -> Any:
    return {"recipient": value} if isinstance(value, str) else value


class AuctionStep(_Model):
    """Sell the lead to the best of its bidders (SPEC section 12): every bidder with
    ``ping`` is pinged at once, the others bid their ``price``; the best bid is posted,
    the next on a rejection, down to ``floor``."""

    name: str | None = None
    recipients: list[Annotated[Bidder, BeforeValidator(_bidder)]] = Field(min_length=1)
    timeout: Timeout = 1.0  # deadline for all bids
    floor: Decimal | None = Field(default=None, ge=0)  # bids below are dropped


class Step(_Model):
    filter: FilterStep | None = None
    recipient: str | None = None
    auction: AuctionStep | None = None
    criteria: RuleSet | None = None
    feedback: StepFeedback = Field(default_factory=StepFeedback)

    @property
    def recipient_ids(self) -> list[str]:
        """The recipients this step may send the lead to: its recipient, or its bidders."""
        if self.auction is not None:
            return [bidder.recipient for bidder in self.auction.recipients]
        return [self.recipient] if self.recipient else []

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [self.filter, self.recipient, self.auction]
        if sum(kind is not None for kind in kinds) != 1:
            raise PydanticCustomError(
                "step", "a step needs exactly one of 'filter', 'recipient' or 'auction'"
            )
        return self


class FlowDuplicates(_Model):
    """Duplicate suppression of a flow (SPEC section 14): a lead whose values of any key
    (a list of the flow's fields) all equal those of a lead the flow (or, with ``scope:
    source``, the source) accepted within ``lookback`` fails at intake."""

    resubmit_window: Duration = 60.0  # the same body again within it: a resubmission
    keys: list[DuplicateKey] = Field(default_factory=list)
    lookback: Duration = 30 * 86400.0
    scope: Literal["flow", "source"] = "flow"


class Flow(_Model):
    name: str | None = None
    enabled: bool = True
    fields: dict[str, FieldDef] = Field(default_factory=dict)
    response: ResponseMode = Field(default_factory=ResponseMode)
    duplicates: FlowDuplicates = Field(default_factory=FlowDuplicates)
    timezone: TimeZone = "UTC"  # absent: the deployment's (``LEADFLOW_TIMEZONE``)
    caps: list[Cap] = Field(default_factory=list)
    schedule: Schedule | None = None
    margin: Margin | None = None  # what a ping quote keeps of the best bid
    ping: PingSettings = Field(default_factory=PingSettings)
    ping_limits: list[PingLimit] = Field(default_factory=list)
    acceptance_criteria: list[Criterion] = Field(default_factory=list)
    sources: dict[str, Source] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _zone(cls, data: Any, info: ValidationInfo) -> Any:
        return _zone_default(data, info)


class LeadflowConfig(_Model):
    recipients: dict[str, Recipient] = Field(default_factory=dict)
    flows: dict[str, Flow] = Field(default_factory=dict)

    def flow(self, flow_id: str) -> Flow | None:
        return self.flows.get(flow_id)


# --- loading -----------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def format_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top)"


def substitute_env(
    data: Any, environ: Mapping[str, str], problems: list[str], loc: tuple[Any, ...] = ()
) -> Any:
    """Replace ``${NAME}`` in every string value; a missing variable is a problem."""
    if isinstance(data, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                problems.append(f"{format_path(loc)}: environment variable {name} is not set")
                return ""
            return environ[name]

        return _VAR.sub(replace, data)
    if isinstance(data, dict):
        return {k: substitute_env(v, environ, problems, (*loc, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute_env(v, environ, problems, (*loc, i)) for i, v in enumerate(data)]
    return data


def parse_config(data: Any, environ: Mapping[str, str]) -> LeadflowConfig:
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["(top): the file must be a mapping with 'recipients' and 'flows'"])
    data = substitute_env(data, environ, problems)
    zone = environ.get("LEADFLOW_TIMEZONE") or "UTC"
    if not known_zone(zone):
        problems.append(f"LEADFLOW_TIMEZONE: unknown time zone '{zone}'")
        zone = "UTC"
    config: LeadflowConfig | None = None
    try:
        config = LeadflowConfig.model_validate(data, context={"timezone": zone})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(p for p in error["loc"] if not _is_union_tag(p))
            if not _is_id_key(loc):  # an id that is not text: said below, by its name
                problems.append(f"{format_path(loc)}: {_message(error)}")
    problems.extend(_id_problems(data))
    problems.extend(_cross_reference_problems(data))
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


#: An empty file (or one of comments only) is refused rather than read as no flows.
EMPTY_FILE = "the file is empty (to remove every flow and recipient, write 'flows: {}')"


def load_config_text(text: str, environ: Mapping[str, str]) -> LeadflowConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"(file): not valid YAML: {exc}"]) from None
    if data is None:  # applied, it would remove every flow: say so in the file itself
        raise ConfigError([f"(file): {EMPTY_FILE}"])
    return parse_config(data, environ)


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in ("Rule", "RuleSet") or part.startswith("function-"))


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        loc: tuple[Any, ...] = ("", *error["loc"])
        parent, name = loc[-2:]
        if parent == "auction" and name in Step.model_fields:  # written one level too deep
            return f"unknown setting ('{name}' goes on the step, beside 'auction')"
        return "unknown setting"
    msg = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    if isinstance(given, str | int | float | bool) and repr(given) not in msg:
        shown = given if len(str(given)) <= 80 else f"{str(given)[:77]}..."
        return f"{msg} (given: {shown!r})"  # the value, as the file has it
    return msg


def _is_id_key(loc: tuple[Any, ...]) -> bool:
    """The key of a recipient, a flow or a flow's source (``_id_problems`` names those)."""
    if not loc or loc[-1] != "[key]":
        return False
    return (len(loc) == 3 and loc[0] in ("recipients", "flows")) or (
        len(loc) == 5 and loc[0] == "flows" and loc[2] == "sources"
    )


def _id_problems(data: Mapping[str, Any]) -> list[str]:
    """Ids YAML reads as something other than text (``off:`` is false, ``1:`` a number)."""
    sections: list[tuple[str, Any]] = [
        ("recipients", data.get("recipients")),
        ("flows", data.get("flows")),
    ]
    flows = data.get("flows")
    for fid, flow in flows.items() if isinstance(flows, dict) else ():
        if isinstance(flow, dict):
            sections.append((f"flows.{fid}.sources", flow.get("sources")))
    return [
        f"{where}: an id must be text, and YAML read one as {_yaml_reading(key)}: quote it"
        for where, section in sections
        if isinstance(section, dict)
        for key in section
        if not isinstance(key, str)
    ]


def _yaml_reading(key: Any) -> str:
    if isinstance(key, bool):
        words = "yes, on, true" if key else "no, off, false"
        return f"{str(key).lower()} (as YAML reads {words} unquoted)"
    return f"the {type(key).__name__} {key!r} (write '{key}')"


def _cross_reference_problems(data: Mapping[str, Any]) -> list[str]:
    """Problems across sections (ids, step recipients), read from the raw data so they are
    listed together with every other problem."""
    problems: list[str] = []
    raw_recipients, raw_flows = data.get("recipients"), data.get("flows")
    recipients: dict[str, Any] = raw_recipients if isinstance(raw_recipients, dict) else {}
    flows: dict[str, Any] = raw_flows if isinstance(raw_flows, dict) else {}
    problems.extend(_recipient_key_problems(recipients, flows))
    ids_message = "ids may use letters, digits, '_', '-' and '.'"
    for rid in recipients:
        if not ID_PATTERN.match(str(rid)):
            problems.append(f"recipients.{rid}: {ids_message}")
    for fid, flow in flows.items():
        if not ID_PATTERN.match(str(fid)):
            problems.append(f"flows.{fid}: {ids_message}")
        if not isinstance(flow, dict):
            continue
        sources = flow.get("sources")
        for sid in sources if isinstance(sources, dict) else {}:
            if not ID_PATTERN.match(str(sid)):
                problems.append(f"flows.{fid}.sources.{sid}: {ids_message}")
        problems.extend(_duplicate_key_problems(fid, flow))
        problems.extend(_default_body_problems(fid, flow, recipients))
        steps = flow.get("steps")
        seen: set[str] = set()
        for index, step in enumerate(steps if isinstance(steps, list) else []):
            problems.extend(_auction_problems(f"flows.{fid}.steps[{index}]", step, recipients))
            recipient = step.get("recipient") if isinstance(step, dict) else None
            if not isinstance(recipient, str):
                continue
            where = f"flows.{fid}.steps[{index}].recipient"
            if recipient not in recipients:
                problems.append(f"{where}: unknown recipient '{recipient}'")
            elif recipient in seen:
                problems.append(f"{where}: '{recipient}' appears twice in this flow")
            seen.add(recipient)
    return problems


def _duplicate_key_problems(fid: str, flow: Mapping[str, Any]) -> list[str]:
    """Each field of a duplicate key must be one of the flow's fields (its type gives
    the normal form the values are compared in)."""
    duplicates, fields = flow.get("duplicates"), flow.get("fields")
    keys = duplicates.get("keys") if isinstance(duplicates, dict) else None
    declared = fields if isinstance(fields, dict) else {}
    problems = []
    for i, key in enumerate(keys if isinstance(keys, list) else []):
        for j, name in enumerate(key if isinstance(key, list) else []):
            if isinstance(name, str) and name not in declared:
                problems.append(
                    f"flows.{fid}.duplicates.keys[{i}][{j}]: unknown field '{name}' "
                    "(a key uses the flow's fields)"
                )
    return problems


def _default_body_problems(
    fid: str, flow: Mapping[str, Any], recipients: Mapping[str, Any]
) -> list[str]:
    """A recipient without a ``fields`` mapping is sent every flow field under its own
    name: those names must make the body its format builds (JSON nests dot paths, XML
    needs element names)."""
    raw_fields, raw_steps = flow.get("fields"), flow.get("steps")
    names = [str(n) for n in raw_fields] if isinstance(raw_fields, dict) else []
    steps = raw_steps if isinstance(raw_steps, list) else []
    problems = []
    for rid in dict.fromkeys(r for step in steps for r in _step_recipients(step)):
        recipient = recipients.get(rid)
        http = recipient.get("http") if isinstance(recipient, dict) else None
        if not isinstance(http, dict) or http.get("fields") is not None or not names:
            continue
        if str(http.get("method", "POST")).upper() == "GET":
            continue
        try:
            if http.get("format", "json") == "json":
                dotpaths.nest(((n, "") for n in names), arrays=True, strict=True)
            elif http.get("format") == "xml":
                xmlwrite.from_paths({f"lead.{n}": "" for n in names}, str, default_root="lead")
        except ValueError as exc:
            problems.append(
                f"flows.{fid}.fields: recipient '{rid}' is sent every field under its own "
                f"name, and {exc} (give it a fields mapping, or rename the field)"
            )
    return problems


def _step_recipients(step: Any) -> list[str]:
    """The recipients a raw step may send to: a recipient step's, an auction's bidders."""
    if not isinstance(step, dict):
        return []
    if isinstance(step.get("recipient"), str):
        return [step["recipient"]]
    auction = step.get("auction")
    listed = auction.get("recipients") if isinstance(auction, dict) else None
    found = []
    for item in listed if isinstance(listed, list) else []:
        rid = item.get("recipient") if isinstance(item, dict) else item
        if isinstance(rid, str):
            found.append(rid)
    return found


def _recipient_key_problems(recipients: Mapping[str, Any], flows: Mapping[str, Any]) -> list[str]:
    """Each field of a recipient's duplicate key must be a field of some flow that sends
    to it."""
    declared: dict[str, set[str]] = {}
    for flow in flows.values():
        if not isinstance(flow, dict):
            continue
        raw_fields, raw_steps = flow.get("fields"), flow.get("steps")
        fields: dict[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
        steps: list[Any] = raw_steps if isinstance(raw_steps, list) else []
        for step in steps:
            for rid in _step_recipients(step):
                declared.setdefault(rid, set()).update(fields)
    problems = []
    for rid, recipient in recipients.items():
        duplicates = recipient.get("duplicates") if isinstance(recipient, dict) else None
        keys = duplicates.get("keys") if isinstance(duplicates, dict) else None
        for i, key in enumerate(keys if isinstance(keys, list) else []):
            for j, name in enumerate(key if isinstance(key, list) else []):
                if isinstance(name, str) and name not in declared.get(str(rid), set()):
                    problems.append(
                        f"recipients.{rid}.duplicates.keys[{i}][{j}]: unknown field '{name}' "
                        "(no flow sending to this recipient has it)"
                    )
    return problems


def _auction_problems(where: str, step: Any, recipients: Mapping[str, Any]) -> list[str]:
    """An auction's bidders must be known recipients, each once (one with neither a
    ``ping`` nor a ``price`` never bids, as SPEC section 12's own example has it)."""
    auction = step.get("auction") if isinstance(step, dict) else None
    listed = auction.get("recipients") if isinstance(auction, dict) else None
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(listed if isinstance(listed, list) else []):
        rid = item.get("recipient") if isinstance(item, dict) else item
        if not isinstance(rid, str):
            continue
        at = f"{where}.auction.recipients[{i}]"
        recipient = recipients.get(rid)
        if recipient is None:
            problems.append(f"{at}: unknown recipient '{rid}'")
        elif rid in seen:
            problems.append(f"{at}: '{rid}' appears twice in this auction")
        seen.add(rid)
    return problems
