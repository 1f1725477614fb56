"""A first run in a real browser, step by step, from the setup to the logout.

The steps run in file order on one tab and build on each other: the setup
saves the settings the login needs, the link made by hand is what the sync
must keep, the failed job is what gets requeued. Each step leaves a
screenshot in ``tests/browser/screenshots``.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    Camera,
    Stack,
    remote_values,
)

pytestmark = pytest.mark.integration


def fill_remotes(page: Page, stack: Stack, **changes: str) -> None:
    """Type both remotes' settings into the wizard, with ``changes`` by field id."""
    for field_id, value in {**remote_values(stack), **changes}.items():
        page.fill(f"#{field_id}", value)


def probe(page: Page, remote: str) -> None:
    page.click(f"button.probe[data-remote={remote}]")
    expect(page.locator(f"#result-{remote}")).not_to_have_text("Testing…")


def test_a_fresh_start_leads_to_the_setup(page: Page, stack: Stack, screenshot: Camera):
    page.goto(stack.url("/"))

    expect(page).to_have_url(stack.url("/setup"))
    expect(page.locator("form#setup")).to_be_visible()
    expect(page.locator("p.note").first).not_to_contain_text("winning over")
    screenshot(page, "01-fresh-start")


def test_acronis_refuses_a_wrong_secret(page: Page, stack: Stack, screenshot: Camera):
    fill_remotes(page, stack, acronis_client_secret="not-the-secret")

    probe(page, "acronis")

    result = page.locator("#result-acronis")
    expect(result).to_have_class("error")
    expect(result).to_contain_text("refused")
    screenshot(page, "02-acronis-refused")


def test_acronis_accepts_the_right_secret(page: Page, stack: Stack, screenshot: Camera):
    fill_remotes(page, stack)

    probe(page, "acronis")

    result = page.locator("#result-acronis")
    expect(result).to_have_class("ok")
    customers = len(stack.sandbox.customers())
    expect(result).to_contain_text(f"{customers} customer tenants")
    screenshot(page, "03-acronis-ok")


def test_alga_refuses_a_wrong_key(page: Page, stack: Stack, screenshot: Camera):
    fill_remotes(page, stack, alga_api_token="not-the-key")

    probe(page, "alga")

    result = page.locator("#result-alga")
    expect(result).to_have_class("error")
    expect(result).to_contain_text("ALGA_API_TOKEN")
    screenshot(page, "04-alga-refused")


def test_alga_accepts_the_right_key(page: Page, stack: Stack, screenshot: Camera):
    fill_remotes(page, stack)

    probe(page, "alga")

    expect(page.locator("#result-alga")).to_have_class("ok")
    expect(page.locator("#result-acronis")).to_have_class("ok")
    screenshot(page, "05-alga-ok")


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


def test_the_setup_closes_once_saved(page: Page, stack: Stack, screenshot: Camera):
    answer = page.goto(stack.url("/setup"))

    assert answer is not None and answer.status == 403
    expect(page.locator("form#setup")).to_have_count(0)
    screenshot(page, "07-setup-closed")
