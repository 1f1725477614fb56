"""The first-run setup through Flask's test client; AlgaPSA stubbed with responses."""

from __future__ import annotations

import json
import logging
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sync.saved_settings import KEY_FILE, SettingsStore, reset_setup
from web import create_app

ALGA = "https://psa.example.com/api/v1"
ACRONIS = "https://eu2-cloud.acronis.com/api/2"
TENANT = "6f0e2c55-27a4-4b5e-9a47-3d4f1c2b9e10"
SECRETS = ("acronis-secret-value", "alga-key-value", "admin password 123")
FORM = {
    "acronis_base_url": "https://eu2-cloud.acronis.com",
    "acronis_client_id": "client-id",
    "acronis_client_secret": SECRETS[0],
    "acronis_tenant_id": TENANT,
    "alga_base_url": "https://psa.example.com",
    "alga_api_token": SECRETS[1],
    "sync_cron": "0 * * * *",
    "sync_timezone": "Europe/Berlin",
    "dry_run": "y",
    "admin_username": "boss",
    "admin_password": SECRETS[2],
    "admin_password_again": SECRETS[2],
}


class Browser:
    """A test client that keeps every page it was shown."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.pages: list[bytes] = []

    def get(self, path: str) -> TestResponse:
        return self._seen(self.client.get(path))

    def post(self, path: str, data: dict[str, str]) -> TestResponse:
        return self._seen(self.client.post(path, data=data))

    def token(self) -> str:
        page = self.get("/setup").get_data(as_text=True)
        found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert found is not None, page
        return found.group(1)

    def show_setup_token(self) -> None:
        answer = self.get(f"/setup?token={setup_token_of(self.client)}")
        assert answer.status_code == 303, answer.get_data(as_text=True)

    def submit(self, path: str = "/setup", **changes: str) -> TestResponse:
        return self.post(path, {**FORM, **changes, "csrf_token": self.token()})

    def _seen(self, response: TestResponse) -> TestResponse:
        self.pages.append(response.get_data())
        return response


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {"DATA_DIR": str(tmp_path / "data"), "REDIS_URL": "redis://127.0.0.1:9/0"}


@pytest.fixture
def app(environ: dict[str, str]) -> Flask:
    return create_app(redis=fakeredis.FakeRedis(), environ=environ)


def setup_token_of(client: FlaskClient) -> str:
    return (browser_dir(client) / "setup-token").read_text().strip()


def browser_dir(client: FlaskClient) -> Path:
    store = client.application.extensions["setup_store"]
    assert isinstance(store, SettingsStore)
    return store.data_dir


@pytest.fixture
def stranger(app: Flask) -> Iterator[Browser]:
    """A visitor who has not shown the setup token."""
    seen = Browser(app.test_client())
    yield seen
    for page in seen.pages:
        for secret in SECRETS:
            assert secret.encode() not in page


@pytest.fixture
def browser(stranger: Browser) -> Browser:
    """The admin, past the setup token."""
    stranger.show_setup_token()
    return stranger


def stub_acronis(stub: responses.RequestsMock) -> None:
    token = {"access_token": "acronis-token", "token_type": "bearer"}
    stub.post(f"{ACRONIS}/idp/token", json={**token, "expires_in": 7200})
    partner = {"id": TENANT, "kind": "partner", "name": "Partner"}
    stub.get(f"{ACRONIS}/tenants/{TENANT}", json=partner)
    customer = {"id": "c-1", "kind": "customer", "name": "Customer"}
    stub.get(f"{ACRONIS}/tenants", json={"items": [partner, customer]})


@pytest.fixture
def alga() -> Iterator[responses.RequestsMock]:
    """Both remotes answer as they should; AlgaPSA has three clients."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as stub:
        stub.get(
            f"{ALGA}/clients",
            json={"data": [{"client_id": "x"}], "pagination": {"total": 3}},
        )
        stub_acronis(stub)
        yield stub


def error_texts(response: TestResponse) -> list[str]:
    return re.findall(r'class="error">([^<]*)<', response.get_data(as_text=True))


def test_a_fresh_app_leads_to_the_setup(browser: Browser) -> None:
    answer = browser.get("/")

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/setup"
    page = browser.get("/setup")
    assert page.status_code == 200
    assert "Test connection" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/sync"), ("POST", "/webhooks/acronis"), ("GET", "/ready")],
)
def test_api_routes_answer_503_before_setup(app: Flask, method: str, path: str) -> None:
    answer = app.test_client().open(path, method=method, json={})

    assert answer.status_code == 503
    assert answer.json is not None
    assert answer.json["error"]["code"] == "not_configured"


def test_health_answers_before_setup(app: Flask) -> None:
    assert app.test_client().get("/health").status_code == 200


def test_a_post_without_csrf_token_is_refused(browser: Browser) -> None:
    assert browser.post("/setup", FORM).status_code == 400
    assert browser.post("/setup/test/alga", FORM).status_code == 400


def test_non_http_urls_are_refused(browser: Browser) -> None:
    answer = browser.submit(acronis_base_url="ftp://eu2-cloud.acronis.com")

    assert answer.status_code == 422
    assert "enter an http:// or https:// address" in error_texts(answer)
    probe = browser.submit("/setup/test/acronis", acronis_base_url="file:///etc")
    assert probe.json == {
        "ok": False,
        "message": "enter an http:// or https:// address",
        "clients": None,
    }


def test_errors_reshow_the_form_without_secrets(browser: Browser) -> None:
    answer = browser.submit(acronis_tenant_id="not-a-uuid", admin_password_again="x")

    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'value="client-id"' in page
    assert "the two passwords differ" in error_texts(answer)
    assert not SettingsStore(browser_dir(browser.client)).configured()


def test_the_merged_settings_are_checked_per_field(browser: Browser) -> None:
    answer = browser.submit(acronis_tenant_id="not-a-uuid")

    errors = error_texts(answer)
    assert answer.status_code == 422
    assert any(text.startswith("is invalid") for text in errors), errors


def test_saving_encrypts_secrets_and_hashes_the_password(
    browser: Browser, alga: responses.RequestsMock
) -> None:
    answer = browser.submit()

    assert answer.status_code == 200, error_texts(answer)
    data_dir = browser_dir(browser.client)
    text = (data_dir / "settings.json").read_text()
    document: dict[str, Any] = json.loads(text)
    assert all(secret not in text for secret in SECRETS)
    assert document["admin"]["password_hash"].startswith("$argon2id$")
    assert stat.S_IMODE((data_dir / "settings.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / KEY_FILE).stat().st_mode) == 0o600
    values = SettingsStore(data_dir).load().values
    assert values["ACRONIS_BASE_URL"] == "https://eu2-cloud.acronis.com/api/2"
    assert values["ALGA_API_TOKEN"] == SECRETS[1]
    assert values["DRY_RUN"] == "true"


def test_clients_in_algapsa_turn_link_only_on(
    browser: Browser, alga: responses.RequestsMock
) -> None:
    answer = browser.submit()

    assert "Link-only mode is on" in answer.get_data(as_text=True)
    values = SettingsStore(browser_dir(browser.client)).load().values
    assert values["SYNC_LINK_ONLY"] == "true"


def test_link_only_can_be_declined(
    browser: Browser, alga: responses.RequestsMock
) -> None:
    browser.submit(create_clients="y")

    values = SettingsStore(browser_dir(browser.client)).load().values
    assert values["SYNC_LINK_ONLY"] == "false"


def test_setup_closes_after_saving_and_reopens_after_reset(
    browser: Browser, alga: responses.RequestsMock
) -> None:
    token = browser.token()
    browser.submit()

    assert browser.get("/setup").status_code == 403
    assert browser.post("/setup", {**FORM, "csrf_token": token}).status_code == 403
    probe = browser.post("/setup/test/alga", {**FORM, "csrf_token": token})
    assert probe.status_code == 403
    assert browser.get("/").headers["Location"] == "/admin"
    # Configured now: the API asks for credentials instead of the setup.
    assert browser.client.post("/sync").status_code == 401

    assert reset_setup(browser_dir(browser.client))
    reopened = browser.get("/setup")
    assert reopened.status_code == 200
    # The used token was forgotten: a new one guards the reopened setup.
    assert 'id="setup-token-form"' in reopened.get_data(as_text=True)
    assert setup_token_of(browser.client)


def test_setup_is_closed_when_the_environment_is_complete(
    environ: dict[str, str],
) -> None:
    complete = {
        **environ,
        "ACRONIS_BASE_URL": "https://eu2-cloud.acronis.com/api/2",
        "ACRONIS_CLIENT_ID": "id",
        "ACRONIS_CLIENT_SECRET": "secret",
        "ACRONIS_TENANT_ID": TENANT,
        "ALGA_BASE_URL": ALGA,
        "ALGA_API_TOKEN": "key",
    }
    client = create_app(redis=fakeredis.FakeRedis(), environ=complete).test_client()

    assert client.get("/setup").status_code == 403
    assert client.get("/").headers["Location"] == "/admin"


def test_environment_overrides_are_named(environ: dict[str, str]) -> None:
    given = {**environ, "DRY_RUN": "false", "SETUP_TOKEN": "given-token"}
    client = create_app(redis=fakeredis.FakeRedis(), environ=given).test_client()

    client.get("/setup?token=given-token")
    page = client.get("/setup").get_data(as_text=True)

    assert "winning over this form:\nDRY_RUN." in page


def test_alga_probe_reports_the_count(
    browser: Browser, alga: responses.RequestsMock
) -> None:
    answer = browser.submit("/setup/test/alga")

    assert answer.json is not None
    assert answer.json["ok"] is True
    assert answer.json["clients"] == 3


def test_alga_probe_reports_a_refused_key(browser: Browser) -> None:
    with responses.RequestsMock() as stub:
        stub.get(
            f"{ALGA}/clients",
            status=403,
            json={"error": {"code": "FORBIDDEN", "message": "Permission denied"}},
        )
        answer = browser.submit("/setup/test/alga")

    assert answer.json is not None
    assert answer.json["ok"] is False
    assert "lacks a permission" in answer.json["message"]


def test_pages_set_safe_cookies_and_headers(stranger: Browser) -> None:
    page = stranger.get("/setup")

    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_secure_cookies_on_request(environ: dict[str, str]) -> None:
    given = {**environ, "SESSION_COOKIE_SECURE": "true"}
    client = create_app(redis=fakeredis.FakeRedis(), environ=given).test_client()

    assert "Secure" in client.get("/setup").headers["Set-Cookie"]


# The setup token


def test_the_wizard_asks_a_stranger_for_the_setup_token(stranger: Browser) -> None:
    page = stranger.get("/setup")

    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="setup-token-form"' in text
    assert "Test connection" not in text
    assert setup_token_of(stranger.client) not in text


def test_a_stranger_can_neither_save_nor_probe(
    stranger: Browser, alga: responses.RequestsMock
) -> None:
    csrf = stranger.token()

    saved = stranger.post("/setup", {**FORM, "csrf_token": csrf})
    probe = stranger.post("/setup/test/alga", {**FORM, "csrf_token": csrf})

    assert saved.status_code == 403
    assert 'id="setup-token-form"' in saved.get_data(as_text=True)
    assert probe.status_code == 403
    assert probe.json is not None
    assert probe.json["error"]["code"] == "setup_token"
    assert not alga.calls, "a stranger made the server call out"
    assert not SettingsStore(browser_dir(stranger.client)).configured()


def test_a_wrong_token_is_refused(stranger: Browser) -> None:
    by_link = stranger.get("/setup?token=guessed")
    csrf = stranger.token()
    by_form = stranger.post("/setup/token", {"token": "guessed", "csrf_token": csrf})

    assert by_link.status_code == 403
    assert by_form.status_code == 403
    assert "that is not the setup token" in by_form.get_data(as_text=True)
    assert 'id="setup-token-form"' in stranger.get("/setup").get_data(as_text=True)


def test_the_typed_token_opens_the_wizard(stranger: Browser) -> None:
    token = setup_token_of(stranger.client)
    csrf = stranger.token()

    answer = stranger.post("/setup/token", {"token": token, "csrf_token": csrf})

    assert answer.status_code == 303
    assert answer.headers["Location"] == "/setup"
    assert "Test connection" in stranger.get("/setup").get_data(as_text=True)


def test_the_token_file_is_private_kept_and_logged_once(
    environ: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="web.setup"):
        first = create_app(redis=fakeredis.FakeRedis(), environ=environ)
        create_app(redis=fakeredis.FakeRedis(), environ=environ)

    path = Path(environ["DATA_DIR"]) / "setup-token"
    token = path.read_text().strip()
    assert len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert setup_token_of(first.test_client()) == token
    lines = [r.getMessage() for r in caplog.records if "Setup is open" in r.message]
    expected = f"Setup is open: visit /setup?token={token} (also in {path})"
    assert lines == [expected, expected]  # one line for each start


@pytest.mark.parametrize("variable", ["SETUP_TOKEN", "ADMIN_PASSWORD"])
def test_a_token_from_the_environment_is_used_and_never_logged(
    environ: dict[str, str], variable: str, caplog: pytest.LogCaptureFixture
) -> None:
    given = {**environ, variable: "token from the environment"}
    with caplog.at_level(logging.WARNING, logger="web.setup"):
        client = create_app(redis=fakeredis.FakeRedis(), environ=given).test_client()

    answer = client.get("/setup?token=token from the environment")

    assert answer.status_code == 303
    assert not (Path(environ["DATA_DIR"]) / "setup-token").exists()
    assert variable in caplog.text
    assert "token from the environment" not in caplog.text


def test_saving_forgets_the_token(
    browser: Browser, alga: responses.RequestsMock
) -> None:
    assert browser.submit().status_code == 200

    assert not (browser_dir(browser.client) / "setup-token").exists()


# Saving tests both remotes


@pytest.fixture
def refusing_acronis() -> Iterator[responses.RequestsMock]:
    """AlgaPSA answers, but Acronis refuses the API client's secret."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as stub:
        stub.get(f"{ALGA}/clients", json={"data": [], "pagination": {"total": 0}})
        refused = {"error": "invalid_client", "error_description": "bad secret"}
        stub.post(f"{ACRONIS}/idp/token", status=401, json=refused)
        yield stub


def test_a_failed_connection_test_stops_the_save(
    browser: Browser, refusing_acronis: responses.RequestsMock
) -> None:
    answer = browser.submit()

    errors = error_texts(answer)
    assert answer.status_code == 422
    assert any(e.startswith("Acronis connection test failed: ") for e in errors)
    assert not any(e.startswith("AlgaPSA") for e in errors), errors
    assert "Save even though a connection test failed" in answer.get_data(True)
    assert not SettingsStore(browser_dir(browser.client)).configured()


def test_saving_anyway_says_what_failed(
    browser: Browser, refusing_acronis: responses.RequestsMock
) -> None:
    answer = browser.submit(save_anyway="y")

    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert 'id="saved-despite-failures"' in page
    assert "Acronis connection test failed: " in page
    assert SettingsStore(browser_dir(browser.client)).configured()


def test_the_done_and_closed_pages_lead_to_the_admin_pages(
    browser: Browser, alga: responses.RequestsMock
) -> None:
    done = browser.submit().get_data(as_text=True)
    closed = browser.get("/setup").get_data(as_text=True)

    for page in (done, closed):
        assert 'href="/login"' in page
        assert 'href="/admin/onboarding"' in page
        assert "Reset setup" in page


# The job dashboard


def test_the_job_dashboard_is_mounted_before_setup(stranger: Browser) -> None:
    answer = stranger.client.get("/rq/", headers={"Accept": "application/json"})

    assert answer.status_code == 401  # mounted, and guarded


def test_the_job_dashboard_opens_after_setup_without_a_restart(
    browser: Browser, alga: responses.RequestsMock
) -> None:
    browser.submit()
    page = browser.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found is not None
    login = {"username": "boss", "password": SECRETS[2], "csrf_token": found[1]}

    assert browser.post("/login", login).status_code == 302
    assert browser.get("/rq/").status_code == 200
