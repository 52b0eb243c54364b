"""The web console in real headless Chromium against the five services: connecting a mailbox
with the three answers shown first, a timeline as visibility allows, fixing an unassigned
thread with one click, and previewing a capture-rule change before applying it.

Screenshots of each step are kept in `test-artifacts/console/`.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.browser import artifacts_dir, console_errors, headless_chromium
from tests.support.infra import Infra
from tests.support.mail import (
    MailAccount,
    build_message,
    create_account,
    deliver,
    mailbox_connection,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")


@dataclass(frozen=True)
class Workspace:
    api: httpx.Client
    owner_token: str
    owner: MailAccount
    ann_id: str

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    return artifacts_dir("console")


def until(probe: Callable[[], T | None], *, timeout: float = 60, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def workspace(api_url: str, infra: Infra) -> Iterator[Workspace]:
    """A workspace whose owner's mailbox (connected through the api) holds three conversations:
    one with a contact, one from the contact's private address, one from a stranger."""
    owner = create_account(infra, "acme.test", "owner")
    with httpx.Client(base_url=api_url, timeout=30) as api:
        created = api.post("/v1/workspaces", json={"name": "Acme", "domains": ["acme.test"]})
        assert created.status_code == 201, created.text
        token = created.json()["api_key"]
        api.headers["Authorization"] = f"Bearer {token}"
        ann = api.post("/v1/contacts", json={"name": "Ann Client", "emails": ["ann@client.test"]})
        assert ann.status_code == 201, ann.text
        for sender, name, subject, body in (
            ("ann@client.test", "Ann Client", "Pricing for 40 seats", "Could you send prices?"),
            ("ann.private@gmail.com", "Ann Client", "From my phone", "Sent from my phone."),
            ("carl@partner.test", "Carl Partner", "Partnership idea", "Shall we talk?"),
        ):
            message = build_message(
                sender=sender, sender_name=name, to=[owner.address], subject=subject, body=body
            )
            deliver(infra, message, [owner.address])
        connected = api.post(
            "/v1/mailboxes", json=mailbox_connection(infra, owner, visibility="metadata")
        )
        assert connected.status_code == 201, connected.text
        until(
            lambda: len(api.get("/v1/threads").json()["items"]) == 3,
            what="the three conversations logged",
        )
        yield Workspace(api, token, owner, ann.json()["id"])


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def no_page_errors(browser: WebDriver) -> Iterator[None]:
    """Every step ran without a script error or a blocked resource in the page."""
    console_errors(browser)
    yield
    assert [e for e in console_errors(browser) if "favicon.ico" not in e] == []


def wait_for(browser: WebDriver, by: str, value: str, timeout: float = 30) -> WebElement:
    element: WebElement = WebDriverWait(browser, timeout).until(
        expected_conditions.visibility_of_element_located((by, value))
    )
    return element


def sign_in(browser: WebDriver, api_url: str, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{api_url}/console")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(browser, By.ID, "connect-mailbox")


def test_connecting_a_mailbox_shows_the_three_answers_before_it_is_confirmed(
    browser: WebDriver, api_url: str, workspace: Workspace, infra: Infra, screenshots: Path
) -> None:
    browser.get(f"{api_url}/console/mailboxes")
    assert "/console/mailboxes" not in browser.current_url, "pages need a sign-in"
    wait_for(browser, By.ID, "token")
    sign_in(browser, api_url, workspace.owner_token)
    browser.save_screenshot(str(screenshots / "01-mailboxes.png"))

    sales = create_account(infra, "acme.test", "sales")
    browser.find_element(By.ID, "connect-mailbox").click()
    fields = {
        "address": sales.address,
        "display_name": "Sales desk",
        "imap_password": sales.password,
        "imap_host": infra.imap_host,
        "imap_port": str(infra.imap_port),
        "smtp_host": infra.smtp_host,
        "smtp_port": str(infra.smtp_port),
        "backfill_days": "7",
    }
    for name, value in fields.items():
        element = wait_for(browser, By.ID, name)
        element.clear()
        element.send_keys(value)
    for name in ("imap_security", "smtp_security"):
        Select(browser.find_element(By.ID, name)).select_by_value("none")
    Select(browser.find_element(By.ID, "visibility")).select_by_value("private")
    browser.find_element(By.ID, "review-button").click()

    what = wait_for(browser, By.ID, "answer-what").text
    direction = browser.find_element(By.ID, "answer-direction").text
    who = browser.find_element(By.ID, "answer-who").text
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "answers"))
    browser.save_screenshot(str(screenshots / "02-connect-review.png"))
    assert "last 7 days" in what
    assert f"sent from {sales.address}" in direction
    assert "never changes flags, moves or deletes mail" in direction
    assert who.startswith("Only the mailbox owner can see this mail")
    addresses = [item["address"] for item in workspace.get("/v1/mailboxes")]
    assert sales.address not in addresses, "nothing is saved before the confirmation"

    browser.find_element(By.ID, "confirm-connect").click()

    def on_mailbox_page() -> bool:
        outcome = browser.find_elements(By.ID, "outcome")
        assert not (outcome and outcome[0].text), outcome[0].text
        return not browser.current_url.endswith("/new")

    until(on_mailbox_page, what="the mailbox page")
    wait_for(browser, By.CSS_SELECTOR, ".answers")
    [mailbox] = [m for m in workspace.get("/v1/mailboxes") if m["address"] == sales.address]
    assert mailbox["visibility"] == "private"
    assert mailbox["sync"]["backfill_days"] == 7
    assert browser.current_url.endswith(f"/console/mailboxes/{mailbox['id']}")
    until(
        lambda: "Up to date" in browser.find_element(By.ID, "health").text,
        what="the new mailbox's state, refreshed on the page",
    )
    browser.save_screenshot(str(screenshots / "03-connected-mailbox.png"))
    assert browser.find_elements(By.CSS_SELECTOR, "#health progress")


def test_a_contact_timeline_shows_what_visibility_allows(
    browser: WebDriver, api_url: str, workspace: Workspace, screenshots: Path
) -> None:
    sign_in(browser, api_url, workspace.owner_token)
    browser.get(f"{api_url}/console/contacts")
    browser.find_element(By.LINK_TEXT, "Ann Client").click()
    timeline = wait_for(browser, By.ID, "timeline").text
    browser.save_screenshot(str(screenshots / "04-timeline-owner.png"))
    assert "Pricing for 40 seats" in timeline
    assert "Could you send prices?" in timeline

    invited = workspace.api.post(
        "/v1/users", json={"email": "mel@acme.test", "role": "member"}
    ).json()
    sign_in(browser, api_url, invited["token"])
    browser.get(f"{api_url}/console/contacts/{workspace.ann_id}")
    timeline = wait_for(browser, By.ID, "timeline").text
    browser.save_screenshot(str(screenshots / "05-timeline-member.png"))
    assert "You see who took part and when" in timeline
    assert "Could you send prices?" not in timeline
    assert "Pricing for 40 seats" not in timeline
    assert "ann@client.test" in timeline


def test_an_unassigned_thread_is_linked_with_one_click_on_a_suggestion(
    browser: WebDriver, api_url: str, workspace: Workspace, screenshots: Path
) -> None:
    sign_in(browser, api_url, workspace.owner_token)
    browser.get(f"{api_url}/console/threads/unassigned")
    page = wait_for(browser, By.TAG_NAME, "main").text
    assert "From my phone" in page
    assert "Partnership idea" in page
    browser.save_screenshot(str(screenshots / "06-unassigned.png"))

    button = browser.find_element(By.XPATH, "//button[contains(., 'Link to contact Ann Client')]")
    button.click()
    done = wait_for(browser, By.CSS_SELECTOR, ".linked .done").text
    browser.save_screenshot(str(screenshots / "07-linked.png"))
    assert "From my phone" in done
    subjects = [t["subject"] for t in workspace.get("/v1/threads", unassigned="true")["items"]]
    assert subjects == ["Partnership idea"]
    timeline = workspace.get(f"/v1/contacts/{workspace.ann_id}/timeline")["items"]
    assert {t["subject"] for t in timeline} == {"Pricing for 40 seats", "From my phone"}


def test_a_capture_rule_change_is_previewed_before_it_is_applied(
    browser: WebDriver, api_url: str, workspace: Workspace, screenshots: Path
) -> None:
    sign_in(browser, api_url, workspace.owner_token)
    browser.get(f"{api_url}/console/capture-rules")
    Select(wait_for(browser, By.ID, "policy")).select_by_value("sent_and_received")
    browser.find_element(By.ID, "preview-button").click()

    preview = wait_for(browser, By.ID, "rule-preview").text
    browser.save_screenshot(str(screenshots / "08-rule-preview.png"))
    assert "carl@partner.test" in preview
    assert "ann.private@gmail.com" not in preview.split("Would be retracted")[0]
    assert workspace.get("/v1/capture-rules")["policy"] == "sent", "a preview saves nothing"
    assert workspace.get("/v1/capture-decisions", address="carl@partner.test")

    browser.find_element(By.ID, "apply-rules").click()
    applied = wait_for(browser, By.ID, "rules-applied").text
    browser.save_screenshot(str(screenshots / "09-rules-applied.png"))
    assert "Rules saved. 1 contact created" in applied
    assert workspace.get("/v1/capture-rules")["policy"] == "sent_and_received"
    contacts = workspace.get("/v1/contacts")["items"]
    assert "carl@partner.test" in {email for c in contacts for email in c["emails"]}
