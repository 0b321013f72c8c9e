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
    assert url_without_password("http://buyer.example/leads?x=1") == "http://buyer.example/leads?x=1"


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
