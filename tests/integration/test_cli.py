"""The operator's commands on a real database: configuration check, apply and show,
schema upgrade, and `leadflow up --scale` parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from services.cli import main
from services.cli.up import parse_scale
from shared import users
from shared.db.engine import make_engine, make_session_factory

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "example.yaml"


class Run(Protocol):
    """``leadflow`` with these arguments, on the test run's database."""

    def __call__(self, *args: str) -> Result: ...


BROKEN = """
recipients:
  acme: {http: {url: "ftp://acme.example/leads"}}
flows:
  auto:
    sources: {web: {api_key: "${NO_SUCH_VARIABLE_HERE}"}}
    steps:
      - recipient: acme
      - filter: {rule_set: {rules: [{lhv: lead.state, op: is sort of, rhv: TX}]}}
      - recipient: acmee
"""


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.delenv("NO_SUCH_VARIABLE_HERE", raising=False)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def stored_versions(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM config_versions"))
            return int(count.scalar_one())
    finally:
        engine.dispose()


def test_an_invalid_file_is_refused_with_every_problem_and_its_path_and_nothing_is_stored(
    run: Run, database_url: str, tmp_path: Path
) -> None:
    # given a file with four problems
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    before = stored_versions(database_url)

    # when it is checked and applied
    checked = run("config", "check", str(broken))
    applied = run("config", "apply", str(broken))

    # then both fail, list every problem with its path, and no version is stored
    for result in (checked, applied):
        assert result.exit_code == 1
        assert "4 problem(s)" in result.output
        assert "flows.auto.steps[2].recipient: unknown recipient 'acmee'" in result.output
        assert "recipients.acme.http.url:" in result.output
        assert "flows.auto.steps[1].filter.rule_set.rules[0].op:" in result.output
        assert "flows.auto.sources.web.api_key:" in result.output
        assert "NO_SUCH_VARIABLE_HERE" in result.output
    assert stored_versions(database_url) == before


def test_a_valid_file_is_stored_once_as_a_new_version_and_shown_back(
    run: Run, database_url: str
) -> None:
    # given the example file
    assert run("config", "check", str(EXAMPLE)).exit_code == 0

    # when it is applied twice
    first = run("config", "apply", str(EXAMPLE))
    second = run("config", "apply", str(EXAMPLE))

    # then one version is stored, the second apply changes nothing, and show prints it
    assert first.exit_code == 0 and second.exit_code == 0
    version = first.output.split()[-1].strip("()")
    assert second.output.strip() == f"configuration unchanged (version {version})"
    shown = run("config", "show")
    assert shown.exit_code == 0
    assert f"# version {version}" in shown.output
    assert shown.output.endswith(EXAMPLE.read_text())


def test_show_names_a_version_that_does_not_exist(run: Run) -> None:
    result = CliRunner().invoke(main, ["config", "show", "--version", "99999"])
    assert result.exit_code == 1
    assert "99999" in result.output


def test_db_upgrade_on_a_migrated_database_says_it_is_up_to_date(run: Run) -> None:
    result = run("db", "upgrade")
    assert result.exit_code == 0
    assert "database is up to date (revision " in result.output


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ((), {}),
        (("http-delivery=4",), {"http-delivery": 4}),
        (("http_delivery=3", "router=2"), {"http-delivery": 3, "router": 2}),
        (("email_delivery=0",), {"email-delivery": 0}),
    ],
)
def test_scale_takes_dashes_or_underscores_and_leaves_the_rest_at_one(
    given: tuple[str, ...], expected: dict[str, int]
) -> None:
    scale = parse_scale(given)
    assert {k: v for k, v in scale.items() if v != 1} == expected
    assert set(scale) == {
        "intake",
        "router",
        "http-delivery",
        "email-delivery",
        "feedback",
        "console",
    }


@pytest.mark.parametrize("bad", ["http-delivery", "mailer=2", "router=two", "router=-1"])
def test_scale_refuses_an_unknown_service_or_a_count_that_is_not_a_number(bad: str) -> None:
    with pytest.raises(ValueError, match="--scale takes SERVICE=N"):
        parse_scale((bad,))


@pytest.mark.parametrize("since", ["2026-11-24", "2026-11-24T00:00:00Z", "2026-11-24T02:00+02:00"])
def test_feedback_list_takes_any_iso_8601_date_or_time(run: Run, since: str) -> None:
    result = run("feedback", "list", "--since", since)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("received at")


def test_feedback_list_refuses_a_since_that_is_not_a_date(run: Run) -> None:
    result = CliRunner().invoke(main, ["feedback", "list", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "'yesterday' is not an ISO 8601 date or time" in result.output


def test_users_add_asks_the_password_twice_and_sets_a_new_one_for_a_name_it_has(
    run: Run, database_url: str
) -> None:
    # given a user added with the password typed twice on standard input
    run("db", "upgrade")
    added = CliRunner().invoke(
        main, ["users", "add", "ops", "--role", "viewer"], input="first-pass\nfirst-pass\n"
    )
    assert added.exit_code == 0, added.output
    mistyped = CliRunner().invoke(
        main, ["users", "add", "other", "--role", "viewer"], input="one-pass1\ntwo-pass2\n"
    )

    # when the same name is added again with --password
    again = run("users", "add", "ops", "--role", "operator", "--password", "second-pass")

    # then the second one is refused, and the user now has the new password and role
    assert mistyped.exit_code == 1 and "differ" in mistyped.output
    assert "user ops updated (operator)" in again.output
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            assert users.check(session, "ops", "first-pass") is None
            person = users.check(session, "ops", "second-pass")
            assert person is not None and person.role == "operator"
            assert users.check(session, "other", "one-pass1") is None
    finally:
        engine.dispose()


def test_users_add_takes_a_short_password_with_a_warning(run: Run, database_url: str) -> None:
    # given a database
    run("db", "upgrade")

    # when a user is added with a six-character password
    added = CliRunner().invoke(
        main, ["users", "add", "desk", "--role", "viewer", "--password", "secret"]
    )

    # then the user can sign in with it, and the operator was warned
    assert added.exit_code == 0, added.output
    assert "user desk added (viewer)" in added.output
    assert "warning: a password under 8 characters is easy to guess" in added.output
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            assert users.check(session, "desk", "secret") is not None
    finally:
        engine.dispose()


def test_config_show_of_a_file_prints_it_as_read_with_defaults_and_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a file with a secret from the environment, one written in, and a URL password
    monkeypatch.setenv("ACME_KEY", "key-from-env")
    written = tmp_path / "c.yaml"
    written.write_text(
        "recipients:\n"
        "  acme:\n"
        "    http: {url: 'https://u:pw1234@acme.example/leads',"
        " headers: {X-Api-Key: '${ACME_KEY}'}}\n"
        "flows:\n"
        "  auto:\n"
        "    sources: {web: {api_key: sekrit99}}\n"
        "    steps: [{recipient: acme}]\n"
    )

    # when it is shown
    shown = CliRunner().invoke(main, ["config", "show", str(written)])

    # then every default is there and no secret is
    assert shown.exit_code == 0, shown.output
    loaded = yaml.safe_load(shown.stdout)
    acme = loaded["recipients"]["acme"]["http"]
    assert acme["method"] == "POST" and acme["retry"]["schedule"][0] == "10s"
    assert acme["url"] == "https://u:***@acme.example/leads"
    assert acme["headers"] == {"X-Api-Key": "***"}
    assert loaded["flows"]["auto"]["sources"]["web"]["api_key"] == "***"
    assert "key-from-env" not in shown.output and "sekrit99" not in shown.output
