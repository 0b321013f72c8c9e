import json
from datetime import date
from typing import Any

import pytest

from shared.fields import FIELD_TYPES, FieldValue, parse_field, to_text
from shared.fields import dates as field_dates


@pytest.fixture
def today_is_2026_06_15(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(field_dates, "_today", lambda: date(2026, 6, 15))


@pytest.mark.parametrize(
    ("type_name", "raw", "normal"),
    [
        ("string", "  hello world ", "hello world"),
        ("first_name", " Ada ", "Ada"),
        ("last_name", "Lovelace", "Lovelace"),
        ("city", " Austin", "Austin"),
        ("phone", "(512) 555-1212", "5125551212"),
        ("phone", "1-512-789-1111", "5127891111"),
        ("phone", "+1 512.789.1111", "5127891111"),
        ("phone", "(512) 555-1212 ext 42", "5125551212x42"),
        ("phone", "512-789-1111 x 44", "5127891111x44"),
        ("email", " John.Doe@Example.COM ", "john.doe@example.com"),
        ("email", "a+tag@mail.example.co.uk", "a+tag@mail.example.co.uk"),
        ("postal_code", "78701", "78701"),
        ("postal_code", "78701-1234", "78701-1234"),
        ("postal_code", "787011234", "78701-1234"),
        ("postal_code", "k1a0b1", "K1A 0B1"),
        ("postal_code", "K1A 0B1", "K1A 0B1"),
        ("postal_code", "sw1a1aa", "SW1A 1AA"),
        ("postal_code", "EC1A  1BB", "EC1A 1BB"),
        ("postal_code", "m1 1ae", "M1 1AE"),
        ("state", "Texas", "TX"),
        ("state", "tx", "TX"),
        ("state", "NEW YORK", "NY"),
        ("state", "district of columbia", "DC"),
        ("state", "Ontario", "ON"),
        ("state", "qc", "QC"),
        ("state", "Bavaria", "Bavaria"),
        ("boolean", "y", True),
        ("boolean", "Yes", True),
        ("boolean", "TRUE", True),
        ("boolean", "t", True),
        ("boolean", "1", True),
        ("boolean", "n", False),
        ("boolean", "No", False),
        ("boolean", "false", False),
        ("boolean", "F", False),
        ("boolean", "0", False),
        ("number", "$100,000.00", 100000),
        ("number", "42", 42),
        ("number", "-3.25", -3.25),
        ("number", " 1 000 ", 1000),
        ("range", "10-20", "10-20"),
        ("range", "10 to 20", "10-20"),
        ("range", "20+", "20+"),
        ("range", "$1,000 - $2,000", "1000-2000"),
        ("range", "15", "15"),
        ("gender", "M", "male"),
        ("gender", "male", "male"),
        ("gender", "Woman", "female"),
        ("gender", "f", "female"),
        ("gender", "other", "other"),
        ("date", "2020-01-02", "2020-01-02"),
        ("date", "2020-01-02T10:30:00Z", "2020-01-02"),
        ("date", "1/2/2020", "2020-01-02"),
        ("date", "01-02-2020", "2020-01-02"),
        ("date", "Jan 2 2020", "2020-01-02"),
        ("date", "January 2, 2020", "2020-01-02"),
        ("date", "2 Jan 2020", "2020-01-02"),
        ("url", "https://example.com/a/b?c=1", "https://example.com/a/b?c=1"),
        ("url", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
        ("ip", "10.0.0.1", "10.0.0.1"),
        ("ip", "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ],
)
def test_a_valid_value_parses_to_its_normal_form(type_name: str, raw: str, normal: Any) -> None:
    # given a submitted value of a known type
    # when it is parsed
    value = parse_field(type_name, raw)
    # then it is valid, normalized and keeps what was submitted
    assert value.valid is True
    assert value.normal == normal
    assert type(value.normal) is type(normal)
    assert value.raw == raw


@pytest.mark.parametrize(
    ("type_name", "raw"),
    [
        ("phone", "123"),
        ("phone", "(123) 456-7890"),
        ("phone", "call me"),
        ("email", "john.doe"),
        ("email", "a@b"),
        ("email", "a b@example.com"),
        ("email", "a@@example.com"),
        ("email", "a@example..com"),
        ("postal_code", "1234"),
        ("postal_code", "ABCDE"),
        ("postal_code", "D1A 1A1"),
        ("boolean", "maybe"),
        ("number", "twelve"),
        ("number", "1.2.3"),
        ("number", "nan"),
        ("range", "a lot"),
        ("gender", "unknown"),
        ("date", "2/30/2020"),
        ("date", "Smarch 2 2020"),
        ("date", "yesterday"),
        ("url", "example.com"),
        ("url", "ftp://example.com/file"),
        ("url", "https://"),
        ("url", "https://exa mple.com"),
        ("ip", "256.1.1.1"),
        ("ip", "localhost"),
    ],
)
def test_an_invalid_value_is_kept_with_valid_false_and_no_normal(type_name: str, raw: str) -> None:
    # given a submitted value that does not fit its type
    # when it is parsed
    value = parse_field(type_name, raw)
    # then it is kept as submitted, invalid, and prints as submitted
    assert value.valid is False
    assert value.normal is None
    assert value.raw == raw
    assert str(value) == raw


@pytest.mark.parametrize("type_name", sorted(FIELD_TYPES))
@pytest.mark.parametrize("raw", ["", "   ", None])
def test_a_blank_value_is_invalid_for_every_type(type_name: str, raw: str | None) -> None:
    # given a blank submission
    # when it is parsed as any type, state included
    value = parse_field(type_name, raw)
    # then it is invalid with no normal value and prints as nothing
    assert value.valid is False
    assert value.normal is None
    assert str(value).strip() == ""


def test_an_unknown_type_name_raises_value_error() -> None:
    # given a type that does not exist
    # when a value is parsed with it
    # then ValueError names the type
    with pytest.raises(ValueError, match="unknown field type 'colour'"):
        parse_field("colour", "red")


@pytest.mark.parametrize(
    ("raw", "components"),
    [
        (
            "(512) 555-1212 ext 42",
            {
                "area": "512",
                "exchange": "555",
                "line": "1212",
                "number": "5551212",
                "extension": "42",
                "country_code": "US",
                "is_tollfree": False,
            },
        ),
        (
            "1 (800) 253-0000",
            {"area": "800", "exchange": "253", "line": "0000", "is_tollfree": True},
        ),
        ("888-555-1234", {"area": "888", "is_tollfree": True}),
        ("833-555-1234", {"area": "833", "is_tollfree": True}),
        ("+1 416 555 1212", {"area": "416", "country_code": "CA", "is_tollfree": False}),
        ("512 789 1111 (m)", {"area": "512", "type": "mobile", "extension": None}),
    ],
)
def test_a_phone_has_us_style_components(raw: str, components: dict[str, Any]) -> None:
    # given a North American phone number
    # when it is parsed
    value = parse_field("phone", raw)
    # then its parts are split out
    assert value.valid
    assert {key: value.components[key] for key in components} == components


def test_a_phone_with_an_extension_normalizes_to_digits_and_x_ext() -> None:
    # given a number written with "ext"
    # when it is parsed
    value = parse_field("phone", "(512) 555-1212 ext 42")
    # then the normal form is the ten digits, then x and the extension
    assert value.normal == "5125551212x42"
    assert str(value) == "5125551212x42"


@pytest.mark.parametrize(
    ("raw", "user", "domain", "is_free", "is_disposable"),
    [
        ("Mike.Jones@GMAIL.com", "mike.jones", "gmail.com", True, False),
        ("someone@yahoo.com", "someone", "yahoo.com", True, False),
        ("temp@mailinator.com", "temp", "mailinator.com", False, True),
        ("x@yopmail.com", "x", "yopmail.com", False, True),
        ("janet@somecompany.biz", "janet", "somecompany.biz", False, False),
    ],
)
def test_an_email_has_user_domain_and_free_and_disposable_flags(
    raw: str, user: str, domain: str, is_free: bool, is_disposable: bool
) -> None:
    # given an email address
    # when it is parsed
    value = parse_field("email", raw)
    # then the user, domain and domain flags are components
    assert value.components["user"] == user
    assert value.components["domain"] == domain
    assert value.components["is_free"] is is_free
    assert value.components["is_disposable"] is is_disposable


@pytest.mark.parametrize(
    ("raw", "country_code", "zip_code", "four"),
    [
        ("78701", "US", "78701", None),
        ("78701-1234", "US", "78701", "1234"),
        ("K1A 0B1", "CA", None, None),
        ("SW1A 1AA", "GB", None, None),
    ],
)
def test_a_postal_code_knows_its_country(
    raw: str, country_code: str, zip_code: str | None, four: str | None
) -> None:
    # given a postal code from the US, Canada or the UK
    # when it is parsed
    value = parse_field("postal_code", raw)
    # then its country and US parts are components
    assert value.components["country_code"] == country_code
    assert value.components["zip"] == zip_code
    assert value.components["four"] == four


@pytest.mark.parametrize(
    ("raw", "normal", "name"),
    [
        ("texas", "TX", "Texas"),
        ("TX", "TX", "Texas"),
        ("N.Y.", "NY", "New York"),
        ("Washington DC", "DC", "District of Columbia"),
        ("british columbia", "BC", "British Columbia"),
        ("  Atlantis ", "Atlantis", None),
    ],
)
def test_a_state_name_becomes_its_code_and_unknown_text_stays_valid(
    raw: str, normal: str, name: str | None
) -> None:
    # given a state written as a name or a code, or something unknown
    # when it is parsed
    value = parse_field("state", raw)
    # then it is always valid: a known state as its code, the rest as given
    assert value.valid is True
    assert value.normal == normal
    assert value.components["name"] == name


@pytest.mark.parametrize(
    ("raw", "low", "high", "mid"),
    [
        ("10-20", 10, 20, 15),
        ("10 to 20", 10, 20, 15),
        ("$1,000 - $2,000", 1000, 2000, 1500),
        ("20 - 10", 10, 20, 15),
        ("1-2", 1, 2, 1),
        ("20+", 20, None, None),
    ],
)
def test_a_range_has_min_max_and_mid(raw: str, low: int, high: int | None, mid: int | None) -> None:
    # given a range, closed or open
    # when it is parsed
    value = parse_field("range", raw)
    # then its bounds and middle (rounded down) are components
    assert (value.components["min"], value.components["max"]) == (low, high)
    assert value.components["mid"] == mid


@pytest.mark.parametrize(("raw", "abbr"), [("male", "M"), ("F", "F"), ("other", "O")])
def test_a_gender_has_an_abbreviation(raw: str, abbr: str) -> None:
    # given a gender
    # when it is parsed
    value = parse_field("gender", raw)
    # then its one-letter abbreviation is a component
    assert value.components["abbr"] == abbr


def test_a_date_has_year_month_and_day() -> None:
    # given a US-style date
    # when it is parsed
    value = parse_field("date", "12/25/2021")
    # then its parts are numbers
    assert value.components == {"year": 2021, "month": 12, "day": 25}


@pytest.mark.usefixtures("today_is_2026_06_15")
@pytest.mark.parametrize(
    ("raw", "normal", "age"),
    [
        ("1990-06-15", "1990-06-15", 36),
        ("1990-06-16", "1990-06-16", 35),
        ("6/14/1990", "1990-06-14", 36),
        ("1/2/85", "1985-01-02", 41),
        ("1/2/20", "2020-01-02", 6),
        ("2026-06-15", "2026-06-15", 0),
    ],
)
def test_a_dob_has_an_age_in_whole_years(raw: str, normal: str, age: int) -> None:
    # given a date of birth, today being 2026-06-15
    # when it is parsed
    value = parse_field("dob", raw)
    # then the age counts whole years, birthdays included
    assert value.normal == normal
    assert value.components["age"] == age


@pytest.mark.usefixtures("today_is_2026_06_15")
def test_a_dob_in_the_future_is_invalid() -> None:
    # given a date of birth after today
    # when it is parsed
    value = parse_field("dob", "2026-06-16")
    # then it is invalid
    assert value.valid is False


@pytest.mark.parametrize(
    ("raw", "scheme", "host", "path"),
    [
        ("https://Example.com/a/b?c=1", "https", "example.com", "/a/b"),
        ("HTTP://localhost:8000", "http", "localhost", ""),
    ],
)
def test_a_url_has_scheme_host_and_path(raw: str, scheme: str, host: str, path: str) -> None:
    # given a web address
    # when it is parsed
    value = parse_field("url", raw)
    # then its parts are components
    assert (value.components["scheme"], value.components["host"]) == (scheme, host)
    assert value.components["path"] == path


@pytest.mark.parametrize(
    ("raw", "version", "is_private"),
    [("10.1.2.3", 4, True), ("8.8.8.8", 4, False), ("::1", 6, True), ("2606:4700::1111", 6, False)],
)
def test_an_ip_has_version_and_privacy(raw: str, version: int, is_private: bool) -> None:
    # given an IP address
    # when it is parsed
    value = parse_field("ip", raw)
    # then its version and whether it is private are components
    assert value.components == {"version": version, "is_private": is_private}


@pytest.mark.parametrize(
    ("type_name", "raw", "stored", "text"),
    [
        ("number", 12.0, "12", "12"),
        ("number", 2.5, "2.5", "2.5"),
        ("boolean", True, "true", "true"),
        ("string", ["a", "b"], ["a", "b"], '["a", "b"]'),
    ],
)
def test_a_non_text_submission_is_kept_as_text_or_structure(
    type_name: str, raw: Any, stored: Any, text: str
) -> None:
    # given a value that arrived as JSON, not text
    # when it is parsed
    value = parse_field(type_name, raw)
    # then raw holds its text (or the list itself) and str() prints it
    assert value.raw == stored
    assert str(value) == text


@pytest.mark.parametrize(
    ("type_name", "raw", "text"),
    [
        ("boolean", "yes", "true"),
        ("boolean", "no", "false"),
        ("number", "$1,234.50", "1234.5"),
        ("phone", "512.555.1212", "5125551212"),
        ("phone", "not a phone", "not a phone"),
    ],
)
def test_a_value_prints_its_normal_form_when_valid_else_what_was_sent(
    type_name: str, raw: str, text: str
) -> None:
    # given a parsed value
    # when it is printed, as a template or a file cell would
    # then valid values print normalized and invalid ones as submitted
    assert str(parse_field(type_name, raw)) == text


@pytest.mark.parametrize(
    ("type_name", "raw"),
    [
        ("phone", "(512) 555-1212 ext 42"),
        ("email", "Mike@Gmail.com"),
        ("number", "$100,000.00"),
        ("number", "1.5"),
        ("boolean", "yes"),
        ("range", "20+"),
        ("dob", "1980-02-29"),
        ("state", "Texas"),
        ("phone", "123"),
        ("string", ["a", {"b": 1}]),
        ("string", ""),
    ],
)
def test_a_value_round_trips_through_json(type_name: str, raw: Any) -> None:
    # given a parsed value
    value = parse_field(type_name, raw)
    # when it is stored as JSON and read back
    restored = FieldValue.from_json(json.loads(json.dumps(value.to_json())))
    # then nothing is lost
    assert restored == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("x", "x"),
        (True, "true"),
        (False, "false"),
        (12.0, "12"),
        (1.5, "1.5"),
        (7, "7"),
        ({"a": 1}, '{"a": 1}'),
    ],
)
def test_to_text_prints_values_the_way_templates_do(value: Any, text: str) -> None:
    # given a plain value
    # when it is turned into text
    # then booleans are lower case, integral floats lose ".0" and None is empty
    assert to_text(value) == text
