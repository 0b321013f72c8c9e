"""The console (SPEC section 16) in a real browser: headless Chromium (Debian's) driven by
Playwright against the real stack started by `leadflow up`: sign in (and land on the page
asked for), find a lead by id, e-mail or phone and open it (with JavaScript off too),
pause and resume a recipient, approve a return, replay and purge dead letters, download a
manual file once confirmed; a viewer cannot act, a form without its CSRF token is
refused, and failed sign-ins for a name are braked."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Stack
from tests.support.infra import wait_for
from tests.support.recipient import Reply

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


def console_up(stack: Stack) -> bool:
    try:
        return requests.get(f"{stack.console_url}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module", autouse=True)
def console(stack: Stack) -> None:
    """The stack's console answers (`leadflow up` waits only for intake)."""
    wait_for(lambda: console_up(stack), timeout=60, message="the console to answer")


@pytest.fixture(scope="module")
def people(stack: Stack) -> dict[str, str]:
    """An operator and a viewer, with their passwords."""
    made = {}
    for role in ("operator", "viewer"):
        name, password = f"{role}-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
        stack.leadflow("users", "add", name, "--role", role, "--password", password)
        made[role] = name
        made[f"{role}_password"] = password
    return made


def sign_in(page: Page, stack: Stack, name: str, password: str) -> None:
    page.goto(f"{stack.console_url}/login")
    fill_in(page, name, password)
    expect(page.locator("header")).to_contain_text(name)


def fill_in(page: Page, name: str, password: str) -> None:
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")


def row_of(page: Page, table: str, text: str) -> Any:
    return page.locator(f"#{table} tr", has_text=text)


@pytest.fixture
def operator_page(browser: Browser, stack: Stack, people: dict[str, str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, stack, people["operator"], people["operator_password"])
    yield page
    context.close()


def paused(stack: Stack, recipient_id: str) -> bool:
    listed = stack.leadflow("recipients", "list").stdout.splitlines()
    (line,) = [line for line in listed if line.split()[0] == recipient_id]
    return line.split()[-1] == "paused"


def sold_lead(stack: Stack, **fields: str) -> tuple[str, str]:
    """A lead the console buyer took: (lead id, its step's event id)."""
    data = {"first_name": "Ada", "state": "TX", **fields}
    answer = stack.submit("console", "web", data=data).json()
    assert "lead" in answer, answer
    lead_id = answer["lead"]["id"]
    report = stack.wait_done(lead_id)
    (event,) = [e for e in report["events"] if e["type"] == "recipient"]
    return lead_id, event["id"]


def parked_lead(stack: Stack, name: str) -> str:
    """A lead whose delivery to the flaky recipient is parked after its retries."""
    stack.recipient.script("/console-flaky", [Reply(503, "down")])
    lead_id = stack.submit("console_dead", data={"first_name": name}).json()["lead"]["id"]
    wait_for(
        lambda: lead_id in stack.leadflow("dead", "list", "--lead", lead_id).stdout,
        timeout=20,
        message="the delivery to be parked",
    )
    return str(lead_id)


def test_every_page_needs_a_sign_in_and_the_sign_in_leads_to_the_page_asked_for(
    stack: Stack, browser: Browser, people: dict[str, str]
) -> None:
    # when a page is asked for without a session, the sign-in form answers
    answer = requests.get(f"{stack.console_url}/leads", allow_redirects=False, timeout=10)
    assert (answer.status_code, answer.headers["Location"]) == (302, "/login?next=/leads")

    # and in a browser, signing in leads to the page asked for
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{stack.console_url}/recipients")
        expect(page.get_by_label("User name")).to_be_visible()
        fill_in(page, people["viewer"], people["viewer_password"])
        expect(page.locator("h1")).to_have_text("Recipients")
        assert page.url == f"{stack.console_url}/recipients"
        for link in (
            "Leads",
            "Recipients",
            "Dead letters",
            "Returns",
            "Manual delivery",
            "Reports",
        ):
            expect(page.get_by_role("link", name=link, exact=True)).to_be_visible()
        page.goto(f"{stack.console_url}/")
        expect(page).to_have_title("Dashboard")
    finally:
        context.close()


def test_the_next_page_after_a_sign_in_stays_on_the_console(stack: Stack) -> None:
    form = stack.console_url + "/login?next=" + "https%3A%2F%2Fevil.example%2F"
    answer = requests.get(form, timeout=10)
    assert 'name="next" value="/"' in answer.text


def test_an_operator_signs_in_finds_a_lead_and_reads_why_it_went_where_it_went(
    stack: Stack, operator_page: Page
) -> None:
    # given a lead the console buyer bought
    lead_id, _ = sold_lead(stack)
    page = operator_page

    # when the operator looks at the dashboard, then finds the lead by its id
    page.goto(f"{stack.console_url}/")
    expect(page.locator("#leads-chart rect").first).to_be_visible()
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "console-dashboard.png"), full_page=True)
    page.goto(f"{stack.console_url}/leads")
    page.get_by_label("ID").fill(lead_id)
    page.get_by_label("ID").press("Enter")

    # then the lead page shows its outcome, its fields, its steps and its deliveries
    expect(page.locator("h1")).to_contain_text(lead_id)
    expect(page.locator("#outcome")).to_have_text("success")
    expect(page.locator("#fields")).to_contain_text("Ada")
    expect(page.locator("#events")).to_contain_text("console_buyer")
    expect(page.locator("#deliveries")).to_contain_text("delivered")
    page.screenshot(path=str(DOCS / "console-lead.png"), full_page=True)

    # and the list of leads links to it
    page.goto(f"{stack.console_url}/leads?flow=console")
    expect(page.locator(f"#leads a[href='/leads/{lead_id}']")).to_be_visible()


def test_a_lead_is_found_by_its_e_mail_or_its_phone_without_either_in_a_url(
    stack: Stack, operator_page: Page
) -> None:
    # given a lead with an e-mail and a phone of its own
    email = f"ada.{secrets.token_hex(4)}@example.com"
    phone = f"512555{secrets.randbelow(10_000):04d}"
    lead_id, _ = sold_lead(stack, email=email, phone_1=phone)
    page = operator_page
    page.goto(f"{stack.console_url}/leads")
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))

    # when the operator searches by the e-mail (written otherwise), the lead is listed alone
    page.get_by_label("E-mail").fill(email.upper())
    page.get_by_label("E-mail").press("Enter")
    expect(page.locator("#leads a")).to_have_count(1)
    expect(page.locator(f"#leads a[href='/leads/{lead_id}']")).to_be_visible()
    expect(page.locator("#leads")).to_contain_text(email)

    # and by the phone as people write it
    page.get_by_label("E-mail").fill("")
    page.get_by_label("Phone").fill(f"({phone[:3]}) {phone[3:6]}-{phone[6:]}")
    page.get_by_label("Phone").press("Enter")
    expect(page.locator("#leads a")).to_have_count(1)
    page.locator(f"#leads a[href='/leads/{lead_id}']").click()
    expect(page.locator("h1")).to_contain_text(lead_id)

    # and neither the e-mail nor the phone went into a URL
    assert urls and not [u for u in urls if email.split("@")[0] in u.lower() or phone in u]


def test_sign_in_lead_search_and_the_lead_page_work_with_javascript_off(
    stack: Stack, browser: Browser, people: dict[str, str]
) -> None:
    email = f"noscript.{secrets.token_hex(4)}@example.com"
    lead_id, _ = sold_lead(stack, email=email)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, stack, people["viewer"], people["viewer_password"])
        page.goto(f"{stack.console_url}/leads")
        page.get_by_label("E-mail").fill(email)
        page.get_by_role("button", name="Search").click()
        page.locator(f"#leads a[href='/leads/{lead_id}']").click()
        expect(page.locator("#outcome")).to_have_text("success")
    finally:
        context.close()


def test_an_operator_pauses_and_resumes_a_recipient(stack: Stack, operator_page: Page) -> None:
    page = operator_page
    page.goto(f"{stack.console_url}/recipients")
    row = page.locator("#recipient-console_buyer")

    # when the operator pauses it
    row.get_by_role("button", name="Pause").click()

    # then it is paused, for the CLI too, and its schedule is still shown
    expect(row.locator(".state")).to_have_text("paused")
    expect(row.locator(".schedule")).to_have_text("open now")
    assert paused(stack, "console_buyer")

    # when it is resumed, it is open again
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".state")).to_have_text("open")


def returned_by_its_buyer(stack: Stack, reason: str) -> tuple[str, str]:
    """A sold lead whose buyer asked to return it (the return waits for a decision)."""
    lead_id, event_id = sold_lead(stack)
    asked = stack.ask_return(event_id, reason)
    assert asked.status_code == 201, asked.text
    return lead_id, event_id


def delivery_status(stack: Stack, event_id: str) -> str:
    return str(stack.scalar("SELECT status FROM deliveries WHERE event_id = :e", e=event_id))


def test_an_operator_approves_one_return_and_rejects_another_each_once_confirmed(
    stack: Stack, operator_page: Page
) -> None:
    # given two returns waiting for a decision
    approved_lead, approved_event = returned_by_its_buyer(stack, "Wrong number")
    rejected_lead, rejected_event = returned_by_its_buyer(stack, "Changed my mind")
    page = operator_page
    page.goto(f"{stack.console_url}/returns")
    # each row shows the return as `leadflow returns list` does: its event and status too
    waiting = page.locator("#returns tr", has_text=approved_lead)
    expect(waiting).to_contain_text(approved_event)
    expect(waiting.locator(".status")).to_have_text("requested")

    # when the operator presses Approve on the first: a page asks, nothing changed yet
    page.locator("#returns tr", has_text=approved_lead).get_by_role(
        "button", name="Approve"
    ).click()
    expect(page.get_by_role("button", name="Confirm")).to_be_visible()
    assert delivery_status(stack, approved_event) == "return requested"

    # then once confirmed the delivery is returned, as `leadflow returns approve` does
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#returns")).not_to_contain_text(approved_lead)
    assert delivery_status(stack, approved_event) == "returned"

    # when it rejects the second with a reason, and confirms
    row = page.locator("#returns tr", has_text=rejected_lead)
    row.get_by_label("Reason").fill("Valid lead")
    row.get_by_role("button", name="Reject").click()
    expect(page.get_by_text("Valid lead")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()

    # then the delivery is sold again and the return carries the operator's reason
    expect(page.locator("#returns")).not_to_contain_text(rejected_lead)
    assert delivery_status(stack, rejected_event) == "delivered"
    decided = stack.scalar(
        "SELECT decision_reason FROM returns WHERE event_id = :e", e=rejected_event
    )
    assert decided == "Valid lead"


def test_dead_letters_are_paged_by_key(stack: Stack, operator_page: Page) -> None:
    # given 51 parked messages of one recipient (mirror rows, oldest first by the minute)
    recipient = f"paged_{secrets.token_hex(3)}"
    for n in range(51):
        stack.execute(
            "INSERT INTO dead_letters (queue, message_id, recipient_id, attempts, failures,"
            " body, parked_at, state) VALUES ('http_delivery', :m, :r, 1, '{}', '{}',"
            " :at, 'parked')",
            m=f"{recipient}-{n:02d}",
            r=recipient,
            at=f"2031-01-01 00:{n:02d}:00",
        )

    # when the operator filters the dead letters by that recipient
    page = operator_page
    page.goto(f"{stack.console_url}/dead?recipient={recipient}")

    # then a page of 50 shows, and the next page the last one
    expect(page.locator("#dead tr[id^=dead-]")).to_have_count(50)
    page.locator("#next").click()
    expect(page.locator("#dead tr[id^=dead-]")).to_have_count(1)
    expect(page.locator(f"#dead-{recipient}-50")).to_have_count(1)


def test_an_operator_replays_a_dead_letter_once_the_recipient_is_fixed(
    stack: Stack, operator_page: Page
) -> None:
    # given a delivery parked after its retries
    lead_id = parked_lead(stack, "Bo")

    # when the recipient is fixed and the operator replays it from the dead letters page
    stack.recipient.script("/console-flaky", [Reply(200, '{"outcome": "success"}')])
    page = operator_page
    page.goto(f"{stack.console_url}/dead?recipient=console_flaky")
    row_of(page, "dead", lead_id).get_by_role("button", name="Replay").click()

    # then it is delivered, and no longer parked
    expect(page.locator("#dead")).not_to_contain_text(lead_id)
    wait_for(
        lambda: stack.show(lead_id)["deliveries"][0]["status"] == "delivered",
        timeout=20,
        message="the replayed delivery to be delivered",
    )


def test_an_operator_purges_a_dead_letter_only_once_confirmed(
    stack: Stack, operator_page: Page
) -> None:
    # given a parked delivery, shown with why it was parked
    lead_id = parked_lead(stack, "Cal")
    page = operator_page
    page.goto(f"{stack.console_url}/dead?lead={lead_id}")
    row_of(page, "dead", lead_id).get_by_role("link").first.click()
    expect(page.locator("#failures")).to_contain_text("503")
    page.go_back()

    # when the operator presses Purge, a confirmation is asked and nothing is purged yet
    row_of(page, "dead", lead_id).get_by_role("button", name="Purge").click()
    expect(page.get_by_role("button", name="Confirm")).to_be_visible()
    assert lead_id in stack.leadflow("dead", "list", "--lead", lead_id).stdout

    # when it is confirmed, the dead letter is gone and the delivery stays not delivered
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#dead")).not_to_contain_text(lead_id)
    assert lead_id not in stack.leadflow("dead", "list", "--lead", lead_id).stdout
    assert stack.show(lead_id)["deliveries"][0]["status"] != "delivered"


def test_an_operator_downloads_a_manual_recipients_leads_once_confirmed(
    stack: Stack, operator_page: Page
) -> None:
    # given two leads waiting for the manual desk
    ids = [
        stack.submit("console_manual", data={"first_name": name}).json()["lead"]["id"]
        for name in ("Cy", "Di")
    ]
    page = operator_page
    page.goto(f"{stack.console_url}/manual")
    row = page.locator("#manual-console_desk")
    assert int(row.locator(".pending").inner_text()) >= 2

    # when the operator presses Download, a confirmation is asked first
    row.get_by_role("button", name="Download").click()
    expect(page.get_by_role("button", name="Confirm")).to_be_visible()
    assert stack.show(ids[0])["deliveries"][0]["status"] == "pending"

    # when it is confirmed, the file comes
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Confirm").click()
    text = Path(downloading.value.path()).read_text()

    # then the file holds them, and they are delivered (nothing left pending)
    assert "Cy" in text and "Di" in text
    for lead_id in ids:
        assert stack.show(lead_id)["deliveries"][0]["status"] == "delivered"
    page.goto(f"{stack.console_url}/manual")
    expect(page.locator("#manual-console_desk .pending")).to_have_text("0")
    # and the console's metrics count the deliveries
    metrics = requests.get(f"{stack.console_url}/metrics", timeout=10).text
    counted = re.search(
        r'^leadflow_deliveries_total\{outcome="success",recipient="console_desk"\} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    assert counted is not None and float(counted.group(1)) >= 2


def test_reports_and_flows_are_read_in_the_browser(stack: Stack, operator_page: Page) -> None:
    page = operator_page
    sold_lead(stack)
    page.goto(f"{stack.console_url}/reports?by=flow")
    expect(page.locator("#report")).to_contain_text("console")
    expect(page.locator("#profit-chart")).to_be_visible()
    with page.expect_download() as downloading:
        page.click("#csv")
    assert Path(downloading.value.path()).read_text().startswith("flow,leads,accepted")
    page.goto(f"{stack.console_url}/flows")
    expect(page.locator("#flow-console")).to_contain_text("console_buyer")
    page.locator("#versions a").first.click()
    expect(page.locator("#diff")).to_be_visible()


def test_a_viewer_reads_but_cannot_act(
    stack: Stack, browser: Browser, people: dict[str, str]
) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in(page, stack, people["viewer"], people["viewer_password"])
        page.goto(f"{stack.console_url}/recipients")
        with page.expect_response(lambda r: "/pause" in r.url) as clicked:
            page.locator("#recipient-console_buyer").get_by_role("button", name="Pause").click()
        assert clicked.value.status == 403
        assert not paused(stack, "console_buyer")
    finally:
        context.close()


def post_sign_in(
    stack: Stack, http: requests.Session, name: str, password: str, token: str | None = None
) -> requests.Response:
    """Post the sign-in form as a browser does: with the token its page carries (the page
    is asked for first), or with ``token``."""
    if token is None:
        form = http.get(f"{stack.console_url}/login", timeout=10).text
        found = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert found is not None, form
        token = found.group(1)
    return http.post(
        f"{stack.console_url}/login",
        data={"name": name, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )


def test_a_form_without_its_csrf_token_is_refused(stack: Stack, people: dict[str, str]) -> None:
    # given an operator's session
    http = requests.Session()
    signed = post_sign_in(stack, http, people["operator"], people["operator_password"])
    assert signed.status_code == 303 and "leadflow_console" in http.cookies

    # when a form is posted without the token, or with another one, then it is refused
    bare = http.post(f"{stack.console_url}/recipients/console_buyer/pause", timeout=10)
    forged = http.post(
        f"{stack.console_url}/recipients/console_buyer/pause",
        data={"csrf_token": "x"},
        timeout=10,
    )
    assert (bare.status_code, forged.status_code) == (403, 403)
    assert not paused(stack, "console_buyer")


def test_deciding_a_return_that_does_not_exist_is_not_found_and_one_decided_is_a_conflict(
    stack: Stack, people: dict[str, str]
) -> None:
    # given an operator's session and a return already approved
    http = requests.Session()
    post_sign_in(stack, http, people["operator"], people["operator_password"])
    found = re.search(r'name="csrf_token" value="([^"]+)"', http.get(stack.console_url).text)
    assert found is not None
    form = {"csrf_token": found.group(1), "confirm": "yes"}
    _, event_id = returned_by_its_buyer(stack, "Wrong number")
    return_id = stack.scalar("SELECT id FROM returns WHERE event_id = :e", e=event_id)
    approved = http.post(
        f"{stack.console_url}/returns/{return_id}/approve", data=form, allow_redirects=False
    )
    assert approved.status_code == 303

    # when an unknown return, and the approved one again, are decided
    unknown = http.post(f"{stack.console_url}/returns/no-such-return/approve", data=form)
    again = http.post(f"{stack.console_url}/returns/{return_id}/reject", data=form)

    # then the first is not found and the second a conflict; the delivery stays returned
    assert (unknown.status_code, again.status_code) == (404, 409)
    assert delivery_status(stack, event_id) == "returned"


def test_a_sign_in_from_another_sites_form_is_refused_and_one_from_a_script_is_not(
    stack: Stack, people: dict[str, str]
) -> None:
    operator = {"name": people["operator"], "password": people["operator_password"]}

    # when the right name and password are posted by another site's form (the browser
    # says where from, and holds no token of ours), or with a token the browser's cookie
    # does not hold
    http = requests.Session()
    bare = http.post(
        f"{stack.console_url}/login",
        data=operator,
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
        timeout=10,
    )
    forged = post_sign_in(stack, requests.Session(), people["operator"], "x", token="t" * 32)

    # then neither signs anyone in; each is offered a fresh form
    assert (bare.status_code, forged.status_code) == (403, 403)
    assert "leadflow_console" not in http.cookies
    assert "This sign-in form had expired" in bare.text
    assert 'name="csrf_token"' in forged.text

    # when a script (no browser: no Origin, no form) posts them, as username and password
    script = requests.Session()
    signed = script.post(
        f"{stack.console_url}/login",
        data={"username": operator["name"], "password": operator["password"]},
        allow_redirects=False,
        timeout=10,
    )

    # then it is signed in
    assert signed.status_code == 303 and "leadflow_console" in script.cookies


def test_ten_failed_sign_ins_in_a_row_for_a_name_brake_it_even_with_the_right_password(
    stack: Stack,
) -> None:
    # given a user
    name, password = f"guessed-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    stack.leadflow("users", "add", name, "--role", "viewer", "--password", password)

    http = requests.Session()

    def attempt(tried: str) -> int:
        return post_sign_in(stack, http, name, tried).status_code

    # when ten wrong passwords are tried, each is refused as wrong
    assert [attempt("wrong-password") for _ in range(10)] == [401] * 10

    # then the next tries are braked, the right password too; other names are not
    assert attempt("wrong-password") == 429
    assert attempt(password) == 429
    other = post_sign_in(stack, http, f"nobody-{secrets.token_hex(3)}", "wrong-password")
    assert other.status_code == 401
