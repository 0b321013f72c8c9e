"""Secrets stay out of logs and records: URL passwords and a request's credentials masked."""

from __future__ import annotations

import base64

import pytest

from shared.config import load_settings
from shared.errors import SettingsError
from shared.redact import request_secrets, scrub, url_without_password


def test_a_password_in_any_url_of_a_text_is_masked() -> None:
    text = "cannot reach amqp://lead:s3cretpw@rabbit:5672/%2F nor smtp://u:p4ss@mail:25"
    assert url_without_password(text) == (
        "cannot reach amqp://lead:***@rabbit:5672/%2F nor smtp://u:***@mail:25"
    )


def test_a_url_without_a_password_is_left_alone() -> None:
    assert (
        url_without_password("http://buyer.example/leads?x=1") == "http://buyer.example/leads?x=1"
    )


def test_a_requests_credentials_are_found_in_its_auth_headers_and_query() -> None:
    # given a request with basic auth, a key header, a bearer token and a key in the query
    secrets = request_secrets(
        "https://buyer.example/leads?api_key=QKEY1234&state=TX",
        {"X-Api-Key": "HKEY5678", "Authorization": "Bearer TOKEN999", "Content-Type": "x/y"},
        ("acme", "PASSWORD1"),
    )

    # when a recipient echoes all of them back
    basic = base64.b64encode(b"acme:PASSWORD1").decode()
    echoed = f"got QKEY1234 HKEY5678 TOKEN999 PASSWORD1 Basic {basic} state=TX x/y"

    # then each is masked and the rest is kept
    assert scrub(echoed, secrets) == "got *** *** *** *** Basic *** state=TX x/y"


def test_a_settings_error_never_shows_the_urls_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_BROKER_URL", "http://lead:s3cretpw@rabbit/")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "s3cretpw" not in str(caught.value)
    assert "lead:***@rabbit" in str(caught.value)


def test_an_idempotency_key_and_names_that_merely_contain_a_word_are_not_secrets() -> None:
    secrets = request_secrets(
        "https://buyer.example/leads?author=ANNLEE1&passenger=BOB12345",
        {"Idempotency-Key": "EVENT123456", "X-Session-Id": "SESS12345"},
        None,
    )
    assert secrets == ("SESS12345",)


def test_a_port_and_an_email_address_in_a_query_are_not_taken_for_a_password() -> None:
    text = "http://host:8080?email=a@x.com and http://u:p@ss@host/ok"
    assert url_without_password(text) == "http://host:8080?email=a@x.com and http://u:***@host/ok"


def test_values_inside_appended_data_are_masked_too() -> None:
    from shared.redact import scrub_value

    appended = {"echo": {"headers": ["X-Api-Key: HKEY5678", "ok"]}, "price": 3}
    assert scrub_value(appended, ("HKEY5678",)) == {
        "echo": {"headers": ["X-Api-Key: ***", "ok"]},
        "price": 3,
    }


def test_a_secret_straddling_the_end_of_a_recorded_excerpt_is_masked() -> None:
    from shared.outbound.send import Answer

    # given an answer whose recorded excerpt would end in the middle of a secret
    answer = Answer(200, "text/plain", b"0123456789HKEY5678 more", 1, None, ("HKEY5678",))

    # when its first 14 characters are kept, then no part of the secret is
    assert answer.excerpt(13) == "0123456789***"
    assert "HKEY" not in answer.excerpt(14)
