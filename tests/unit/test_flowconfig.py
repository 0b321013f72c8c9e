"""The YAML configuration: every problem listed with its path, secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import load_settings
from shared.errors import ConfigError, SettingsError
from shared.flowconfig import load_config_text

EXAMPLE = Path(__file__).parents[2] / "deploy" / "example.yaml"

VALID = """
recipients:
  acme:
    http: {url: "https://acme.example/leads", headers: {X-Api-Key: "${ACME_KEY}"}}
flows:
  auto:
    fields: {phone_1: {type: phone, required: true}}
    sources: {web: {api_key: "${WEB_KEY}"}}
    steps:
      - recipient: acme
"""


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, env or {})
    return caught.value.problems


def test_the_example_configuration_is_valid() -> None:
    config = load_config_text(EXAMPLE.read_text(), {})
    assert "auto" in config.flows


def test_variables_are_replaced_from_the_environment() -> None:
    config = load_config_text(VALID, {"ACME_KEY": "k1", "WEB_KEY": "k2"})
    assert config.recipients["acme"].http is not None
    assert config.recipients["acme"].http.headers == {"X-Api-Key": "k1"}
    assert config.flows["auto"].sources["web"].api_key == "k2"


def test_a_missing_environment_variable_is_a_problem_with_its_path() -> None:
    assert problems_of(VALID, {"ACME_KEY": "k1"}) == [
        "flows.auto.sources.web.api_key: environment variable WEB_KEY is not set"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("recipients: {a: {http: {method: POST}}}", "recipients.a.http.url: URL is required"),
        (
            "recipients: {a: {http: {url: 'http://x', method: DELETE}}}",
            "recipients.a.http.method: Unsupported HTTP method",
        ),
        (
            "recipients: {a: {http: {url: 'http://x', response: {outcome_on_match: maybe}}}}",
            "recipients.a.http.response.outcome_on_match: Outcome on match must be 'success', "
            "'failure', or 'error'",
        ),
        ("recipients: {a: {http: {url: 'http://x', timeout: soon}}}", "recipients.a.http.timeout:"),
        ("recipients: {a: {}}", "recipients.a: a recipient needs exactly one of"),
        ("recipients: {a: {email: {to: [x@y.z], mode: batch}}}", "recipients.a.email: a batch"),
        (
            "recipients: {a: {email: {to: [x@y.z], mode: batch, schedule: 'nope'}}}",
            "recipients.a.email.schedule: 'nope' is not a valid cron expression",
        ),
        (
            "recipients: {a: {email: {to: [x@y.z], timezone: Mars/Base}}}",
            "recipients.a.email.timezone: unknown time zone 'Mars/Base'",
        ),
        (
            "flows: {f: {fields: {x: {type: nope}}}}",
            "flows.f.fields.x.type: unknown field type 'nope'",
        ),
        (
            "flows: {f: {steps: [{recipient: acmee}]}}",
            "flows.f.steps[0].recipient: unknown recipient 'acmee'",
        ),
        ("flows: {f: {steps: [{}]}}", "flows.f.steps[0]: a step needs exactly one of"),
        (
            "flows: {f: {steps: [{filter: {rule_set: {rules: [{lhv: a, op: frobs}]}}}]}}",
            "flows.f.steps[0].filter.rule_set.rules[0].op:",
        ),
        ("flows: {f: {colour: blue}}", "flows.f.colour: unknown setting"),
        (
            "recipients: {r: {manual: {}, price: 1}}\n"
            "flows: {f: {steps: [{auction: {recipients: [r], feedback: {}}}]}}",
            "flows.f.steps[0].auction.feedback: unknown setting"
            " ('feedback' goes on the step, beside 'auction')",
        ),
        (
            "flows: {f: {fields: {email: {type: email}}, duplicates: {keys: [[email, phone]]}}}",
            "flows.f.duplicates.keys[0][1]: unknown field 'phone'",
        ),
        ("flows: {f: {duplicates: {lookback: fortnight}}}", "flows.f.duplicates.lookback:"),
        ("flows: {f: {duplicates: {keys: [[]]}}}", "flows.f.duplicates.keys[0]:"),
        ("flows: {f: {duplicates: {scope: world}}}", "flows.f.duplicates.scope:"),
        (
            "recipients: {r: {manual: {}, duplicates: {keys: [[email]]}}}\n"
            "flows: {f: {fields: {phone_1: {type: phone}}, steps: [{recipient: r}]}}",
            "recipients.r.duplicates.keys[0][0]: unknown field 'email'",
        ),
        (
            "recipients: {r: {manual: {}, duplicates: {lookback: soon}}}",
            "recipients.r.duplicates.lookback:",
        ),
        (
            "recipients: {r: {http: {url: 'http://x.example/', fields: {a: '1', a.b: '2'}}}}",
            "recipients.r.http.fields: cannot nest 'a.b'",
        ),
        (
            "recipients: {r: {http: {url: 'http://x.example/', format: xml, "
            "fields: {a.x: '1', b.y: '2'}}}}",
            "recipients.r.http.fields: XML paths must share one root element",
        ),
        (
            "recipients: {r: {http: {url: 'http://x.example/', fields: {a: '{{lead.a'}}}}",
            "recipients.r.http.fields: unclosed template in '{{lead.a'",
        ),
        (
            "recipients: {r: {http: {url: 'http://x.example/', headers: {X-A: 'b {{lead.a'}}}}",
            "recipients.r.http.headers: unclosed template",
        ),
        (
            "flows: {f: {sources: {s: {feedback: {url: 'not a url'}}}}}",
            "flows.f.sources.s.feedback.url: URL must start with http:// or https://",
        ),
        (
            "recipients: {r: {manual: {}}}\nflows: {f: {steps: [{recipient: r, "
            "feedback: {returns: {enabled: true, max_lead_age_days: -3}}}]}}",
            "flows.f.steps[0].feedback.returns.max_lead_age_days: Input should be greater",
        ),
        (
            "recipients: {r: {http: {url: 'http://x.example/', method: DELETE}}}",
            "recipients.r.http.method: Unsupported HTTP method (given: 'DELETE')",
        ),
        (
            "recipients: {x: {http: {url: 'http://x.example/', format: xml}}}\n"
            "flows: {f: {fields: {2nd_phone: {type: phone}}, steps: [{recipient: x}]}}",
            "flows.f.fields: recipient 'x' is sent every field under its own name, and "
            "Invalid tag name '2nd_phone'",
        ),
        (
            "recipients: {j: {http: {url: 'http://x.example/'}}}\n"
            "flows: {g: {fields: {loan: {type: number}, loan.amount: {type: number}}, "
            "steps: [{recipient: j}]}}",
            "flows.g.fields: recipient 'j' is sent every field under its own name, and "
            "cannot nest 'loan.amount'",
        ),
        (
            "flows: {f: {fields: {2: {type: string}}}}",
            "flows.f.fields[2].[key]: Input should be a valid string (given: 2)",
        ),
        (
            "flows: {off: {}}",
            "flows: an id must be text, and YAML read one as false (as YAML reads no, off",
        ),
        (
            "flows: {f: {sources: {1: {}}}}",
            "flows.f.sources: an id must be text, and YAML read one as the int 1 (write '1')",
        ),
        (
            "flows: {f: {response: {mode: later}}}",
            "flows.f.response.mode: Input should be 'after_flow' or 'on_receipt' (given: 'later')",
        ),
    ],
)
def test_each_problem_names_its_path_and_what_is_wrong(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems_of(text)), problems_of(text)


def test_every_problem_is_listed_at_once() -> None:
    text = """
recipients:
  acme: {http: {method: DELETE}}
flows:
  auto:
    fields: {x: {type: nope}}
    steps: [{recipient: acmee}, {recipient: acme}]
"""
    problems = problems_of(text)
    assert len(problems) == 4
    assert "flows.auto.steps[0].recipient: unknown recipient 'acmee'" in problems


def test_a_file_that_is_not_yaml_is_refused() -> None:
    assert problems_of("a: [")[0].startswith("(file): not valid YAML")


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_an_empty_file_is_refused_rather_than_read_as_no_flows(text: str) -> None:
    # given a file with nothing in it
    # when it is checked, then it is refused, saying how to remove every flow on purpose
    assert problems_of(text) == [
        "(file): the file is empty (to remove every flow and recipient, write 'flows: {}')"
    ]
    # and a file that says so is read as no flows
    assert load_config_text("flows: {}", {}).flows == {}


def test_a_recipient_appearing_twice_in_a_flow_is_refused() -> None:
    text = "recipients: {a: {manual: {}}}\nflows: {f: {steps: [{recipient: a}, {recipient: a}]}}"
    assert problems_of(text) == ["flows.f.steps[1].recipient: 'a' appears twice in this flow"]


ZONED = """
recipients:
  plain: {manual: {}}
  paris:
    timezone: Europe/Paris
    email: {to: [desk@example.com], mode: batch, schedule: "0 9 * * *"}
flows:
  auto: {steps: [{recipient: plain}]}
  east: {timezone: America/New_York}
"""


def test_flows_and_recipients_without_a_zone_take_leadflow_timezone() -> None:
    # when the file is loaded with LEADFLOW_TIMEZONE set
    loaded = load_config_text(ZONED, {"LEADFLOW_TIMEZONE": "America/Chicago"})

    # then what names no zone takes it, what names one keeps it, and an email
    # recipient's batch schedule runs in the recipient's zone
    assert loaded.flows["auto"].timezone == "America/Chicago"
    assert loaded.recipients["plain"].timezone == "America/Chicago"
    assert loaded.flows["east"].timezone == "America/New_York"
    email = loaded.recipients["paris"].email
    assert email is not None and email.timezone == "Europe/Paris"


def test_without_leadflow_timezone_the_zone_is_utc() -> None:
    assert load_config_text(ZONED, {}).flows["auto"].timezone == "UTC"


def test_an_unknown_leadflow_timezone_is_a_problem_of_the_file() -> None:
    assert problems_of(ZONED, {"LEADFLOW_TIMEZONE": "Mars/Olympus"}) == [
        "LEADFLOW_TIMEZONE: unknown time zone 'Mars/Olympus'"
    ]


def test_services_refuse_to_start_with_an_unknown_leadflow_timezone() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"LEADFLOW_TIMEZONE": "Mars/Olympus"})
    assert "LEADFLOW_TIMEZONE='Mars/Olympus': unknown time zone" in str(caught.value)
    assert load_settings({"LEADFLOW_TIMEZONE": "Europe/Paris"}).timezone == "Europe/Paris"


def test_a_get_mapping_may_use_any_names_it_sends_them_as_they_are() -> None:
    text = (
        "recipients: {r: {http: {url: 'http://x.example/', method: GET, fields: {a: 1, a.b: 2}}}}"
    )
    assert load_config_text(text, {}).recipients["r"].http is not None


def test_manual_and_batch_email_recipients_leave_their_leads_pending() -> None:
    loaded = load_config_text(
        """
recipients:
  desk: {manual: {}}
  batch: {email: {to: [a@example.com], mode: batch, every: 1h}}
  now: {email: {to: [a@example.com]}}
  api: {http: {url: "http://x.example/"}}
""",
        {},
    )
    pending = {rid for rid, r in loaded.recipients.items() if r.leaves_pending}
    assert pending == {"desk", "batch"}


@pytest.mark.parametrize(
    "timing",
    ["every: 90m", "schedule: {every: 90m}", 'schedule: "every 90m"', "schedule: Every 1h30m"],
)
def test_a_batch_schedule_of_every_may_be_written_beside_schedule_or_in_it(timing: str) -> None:
    # given a batch recipient whose timing is a duration, written each way
    text = f"recipients:\n  b: {{email: {{to: [a@example.com], mode: batch, {timing}}}}}\n"

    # when the file is loaded
    email = load_config_text(text, {}).recipients["b"].email

    # then the batch goes every 90 minutes, with no cron schedule
    assert email is not None and (email.every, email.schedule) == (5400.0, None)
