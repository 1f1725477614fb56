"""A first run in a real browser, step by step, from the setup to the logout.

The steps run in file order on one tab and build on each other: the setup
saves the settings the login needs, the link made by hand is what the sync
must keep, the failed job is what gets requeued. Each step leaves a
screenshot in ``tests/browser/screenshots``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    LOOKALIKE_NAME,
    Camera,
    Stack,
    job_texts,
    leaked,
    remote_values,
    setup_token,
    stored_texts,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("chromium")]
step = pytest.mark.step

RELOAD_PAUSE = 0.3
BAR = re.compile(r'<rect class="bar bar-(\w+)"[^>]*\bheight="([\d.]+)"')
# A job's page reloads itself every 2 s; a sync of a few tenants takes less.
JOB_WAIT_MS = 30_000


def fill_remotes(page: Page, stack: Stack, **changes: str) -> None:
    """Type both remotes' settings into the wizard, with ``changes`` by field id."""
    for field_id, value in {**remote_values(stack), **changes}.items():
        page.fill(f"#{field_id}", value)


def probe(page: Page, remote: str) -> None:
    page.click(f"button.probe[data-remote={remote}]")
    expect(page.locator(f"#result-{remote}")).not_to_have_text("Testing…")


@step
def test_a_fresh_start_asks_for_the_setup_token(
    page: Page, stack: Stack, screenshot: Camera
):
    page.goto(stack.url("/"))

    expect(page).to_have_url(stack.url("/setup"))
    expect(page.locator("form#setup")).to_have_count(0)
    page.fill("#token", "a guessed token")
    page.click("#setup-token-submit")
    expect(page.locator("#token-error")).to_have_text("that is not the setup token")
    screenshot(page, "00-setup-token")


@step
def test_the_token_opens_the_setup(page: Page, stack: Stack, screenshot: Camera):
    page.fill("#token", setup_token(stack))
    page.click("#setup-token-submit")

    expect(page).to_have_url(stack.url("/setup"))
    expect(page.locator("form#setup")).to_be_visible()
    expect(page.locator("p.note").first).not_to_contain_text("winning over")
    screenshot(page, "01-fresh-start")


@step
def test_acronis_refuses_a_wrong_secret(page: Page, stack: Stack, screenshot: Camera):
    fill_remotes(page, stack, acronis_client_secret="not-the-secret")

    probe(page, "acronis")

    result = page.locator("#result-acronis")
    expect(result).to_have_class("error")
    expect(result).to_contain_text("refused")
    screenshot(page, "02-acronis-refused")


@step
def test_acronis_accepts_the_right_secret(page: Page, stack: Stack, screenshot: Camera):
    fill_remotes(page, stack)

    probe(page, "acronis")

    result = page.locator("#result-acronis")
    expect(result).to_have_class("ok")
    customers = len(stack.sandbox.customers())
    expect(result).to_contain_text(f"{customers} customer tenants")
    screenshot(page, "03-acronis-ok")


@step
def test_alga_refuses_a_wrong_key(page: Page, stack: Stack, screenshot: Camera):
    fill_remotes(page, stack, alga_api_token="not-the-key")

    probe(page, "alga")

    result = page.locator("#result-alga")
    expect(result).to_have_class("error")
    expect(result).to_contain_text("ALGA_API_TOKEN")
    screenshot(page, "04-alga-refused")


@step
def test_alga_accepts_the_right_key(page: Page, stack: Stack, screenshot: Camera):
    fill_remotes(page, stack)

    probe(page, "alga")

    expect(page.locator("#result-alga")).to_have_class("ok")
    expect(page.locator("#result-acronis")).to_have_class("ok")
    screenshot(page, "05-alga-ok")


@step
def test_saving_starts_in_link_only_mode(page: Page, stack: Stack, screenshot: Camera):
    # The secret boxes are the ones just tested; the form keeps them typed.
    page.fill("#sync_timezone", "Europe/Berlin")
    page.fill("#admin_username", ADMIN_USERNAME)
    page.fill("#admin_password", ADMIN_PASSWORD)
    page.fill("#admin_password_again", ADMIN_PASSWORD)

    page.click("form#setup button[type=submit]")

    expect(page.locator("p.ok")).to_contain_text("The settings are saved")
    expect(page.locator("div.note")).to_contain_text("Link-only mode is on")
    screenshot(page, "06-setup-saved")


@step
def test_the_setup_closes_once_saved(page: Page, stack: Stack, screenshot: Camera):
    answer = page.goto(stack.url("/setup"))

    assert answer is not None and answer.status == 403
    expect(page.locator("form#setup")).to_have_count(0)
    screenshot(page, "07-setup-closed")


@pytest.fixture(scope="module")
def carried() -> dict[str, str]:
    """What one step leaves for a later one, such as a job id."""
    return {}


def reload_until(page: Page, shown: Callable[[], bool], timeout: float = 30) -> None:
    """Reload ``page`` until ``shown`` says that what a worker did is on it."""
    deadline = time.monotonic() + timeout
    while not shown():
        assert time.monotonic() < deadline, f"not shown after {timeout:.0f} s"
        time.sleep(RELOAD_PAUSE)
        page.reload()


def tenant_row(page: Page, stack: Stack, kind: str) -> Locator:
    """The table row of the tenant that has a look-alike client."""
    tenant_id = stack.tenant["id"]
    return page.locator(f"[data-test={kind}][data-tenant-id='{tenant_id}']")


def flashed(page: Page) -> str:
    flash = page.locator("[data-test=flash-ok]")
    expect(flash).to_be_visible()
    return flash.inner_text()


@step
def test_a_wrong_password_is_refused(page: Page, stack: Stack, screenshot: Camera):
    page.goto(stack.url("/admin"))
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)admin$"))

    page.fill("#username", ADMIN_USERNAME)
    page.fill("#password", "not the password")
    page.click("#login-submit")

    expect(page.locator("#login-error")).to_have_text("wrong username or password")
    screenshot(page, "08-login-refused")


@step
def test_the_right_password_opens_the_overview(
    page: Page, stack: Stack, screenshot: Camera
):
    page.fill("#username", ADMIN_USERNAME)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-submit")

    expect(page).to_have_url(stack.url("/admin"))
    expect(page.locator("#no-runs")).to_be_visible()
    expect(page.locator("#mode")).to_contain_text("link only")
    screenshot(page, "09-overview-before-any-run")


@step
def test_onboarding_suggests_the_lookalike(
    page: Page, stack: Stack, screenshot: Camera
):
    page.click("[data-test=nav-onboarding]")

    expect(page.locator("#link-only-state")).to_have_attribute("data-state", "on")
    best = tenant_row(page, stack, "onboarding-row").locator("[data-test=candidate]")
    expect(best.first).to_have_attribute("value", stack.lookalike["client_id"])
    expect(best.first).to_be_checked()
    expect(tenant_row(page, stack, "onboarding-row")).to_contain_text(LOOKALIKE_NAME)
    screenshot(page, "10-onboarding-suggestion")


@step
def test_link_the_lookalike_by_hand(page: Page, stack: Stack, screenshot: Camera):
    tenant_row(page, stack, "onboarding-row").locator("[data-test=link]").click()

    assert stack.lookalike["client_id"] in flashed(page)
    expect(tenant_row(page, stack, "onboarding-row")).to_have_count(0)
    screenshot(page, "11-linked-by-hand")


@step
def test_end_the_review(page: Page, stack: Stack, screenshot: Camera):
    page.click("#review-done")

    expect(page.locator("#link-only-state")).to_have_attribute("data-state", "off")
    screenshot(page, "12-review-done")


@step
def test_run_a_sync(page: Page, stack: Stack, screenshot: Camera):
    page.click("[data-test=nav-actions]")
    page.click("#run-sync")

    expect(page).to_have_url(re.compile(r"/admin/jobs/"))
    # The job page reloads itself until the job is done.
    state = page.locator("#job-state")
    expect(state).to_have_attribute("data-state", "finished", timeout=JOB_WAIT_MS)
    expect(page.locator("#job-counts")).to_be_visible()
    screenshot(page, "13-sync-finished")


@step
def test_links_show_the_tenants_and_one_lookalike(
    page: Page, stack: Stack, screenshot: Camera
):
    customers = len(stack.sandbox.customers())

    page.click("[data-test=nav-links]")
    rows = page.locator("[data-test=link-row]")
    reload_until(page, lambda: rows.count() == customers)

    row = tenant_row(page, stack, "link-row")
    expect(row).to_contain_text(LOOKALIKE_NAME)
    expect(row).to_contain_text(stack.lookalike["client_id"])
    alike = [
        client
        for client in stack.sandbox.clients()
        if "blue river" in client["client_name"].casefold()
    ]
    assert [client["client_id"] for client in alike] == [stack.lookalike["client_id"]]
    assert alike[0]["client_name"] == LOOKALIKE_NAME  # a person chose that name
    screenshot(page, "14-links")


@step
def test_the_overview_charts_the_run(page: Page, stack: Stack, screenshot: Camera):
    page.click("[data-test=nav-overview]")

    expect(page.locator("[data-test=run-row]")).to_have_count(1)
    expect(page.locator("svg#runs-chart [data-test=chart-run]")).to_have_count(1)
    screenshot(page, "15-overview-chart")


@step
def test_a_failed_job_shows_in_actions(
    page: Page, stack: Stack, screenshot: Camera, carried: dict[str, str]
):
    fault = {"service": "alga", "status": 503, "path": "clients", "times": None}
    stack.sandbox.control("POST", "/faults", fault)
    page.click("[data-test=nav-links]")

    tenant_row(page, stack, "link-row").locator("[data-test=sync-now]").click()
    job_id = re.sub(r"\.$", "", flashed(page).rsplit(" ", 1)[-1])
    page.click("[data-test=nav-actions]")
    failed = page.locator("[data-test=failed-row]", has_text=job_id)
    reload_until(page, lambda: failed.count() == 1)

    expect(failed).to_contain_text(stack.tenant["id"])
    expect(failed.locator(".error-text")).to_contain_text("503")
    screenshot(page, "16-job-failed")
    carried["failed_job"] = job_id


@step
def test_requeue_the_failed_job(
    page: Page, stack: Stack, screenshot: Camera, carried: dict[str, str]
):
    stack.sandbox.control("DELETE", "/faults")

    page.click("#requeue-failed")

    assert flashed(page) == "1 failed job requeued."
    page.goto(stack.url(f"/admin/jobs/{carried['failed_job']}"))
    state = page.locator("#job-state")
    expect(state).to_have_attribute("data-state", "finished", timeout=JOB_WAIT_MS)
    screenshot(page, "17-requeued-job-finished")


@step
def test_log_out(page: Page, stack: Stack, screenshot: Camera):
    page.click("#logout")

    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(stack.url("/admin/links"))
    expect(page).to_have_url(re.compile(r"/login\?next="))
    screenshot(page, "18-logged-out")


def test_the_chart_draws_a_bar_for_the_run(screenshot: Camera):
    """A run that only queued its writes must still be seen in the chart."""
    html = screenshot.html.get("15-overview-chart", "")

    bars = {name: float(height) for name, height in BAR.findall(html)}

    assert bars, "the overview step left no chart"
    assert max(bars.values()) > 0, f"every bar of the run is flat: {bars}"


def test_no_secret_is_shown_logged_or_queued(stack: Stack, screenshot: Camera):
    secrets = stack.secrets()
    jobs = job_texts(stack)

    shown = {name: leaked(html, secrets) for name, html in screenshot.html.items()}
    queued = {job_id: leaked(text, secrets) for job_id, text in jobs.items()}
    stored = {key: leaked(text, secrets) for key, text in stored_texts(stack).items()}

    assert shown and not any(shown.values()), shown
    assert leaked(stack.log_text(), secrets) == []
    assert jobs and not any(queued.values()), queued
    assert stored and not any(stored.values()), stored
