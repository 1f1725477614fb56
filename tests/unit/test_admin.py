"""The admin pages through Flask's test client: login, guard, actions, settings."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sync.keys import Keys
from sync.links import Link, RedisLinkStore
from sync.saved_settings import Admin, SettingsStore, hash_password
from sync.settings import Settings
from web import create_app
from web.admin import next_run
from web.admin_auth import safe_next
from web.admin_chart import run_chart
from worker import queueing

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "admin-pw-long-enough"
SECRETS = ("acronis-secret-value", "alga-token-value", PASSWORD, "api-token-value")
PAGES = (
    "/admin",
    "/admin/links",
    "/admin/links/6f0e2c55-27a4-4b5e-9a47-3d4f1c2b9e10/change",
    "/admin/actions",
    "/admin/jobs/reconcile-1",
    "/admin/mapping",
    "/admin/onboarding",
    "/admin/settings",
    "/admin/settings/reset",
)
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class RecordingQueue:
    """Stands in for RQ: remembers what was queued."""

    def __init__(self) -> None:
        self.upserts: list[tuple[str, str]] = []
        self.reconciles: list[bool] = []

    def enqueue_upsert(self, tenant_id: str, *, source: str) -> str:
        if not re.fullmatch(r"[0-9a-f-]{36}", tenant_id):
            raise ValueError(f"{tenant_id!r} is not a tenant id (a UUID)")
        self.upserts.append((tenant_id, source))
        return f"upsert-{tenant_id}-{len(self.upserts)}"

    def enqueue_reconcile(self, *, dry_run: bool, source: str) -> str:
        self.reconciles.append(dry_run)
        return "reconcile-1"

    def report(self, job_id: str) -> dict[str, Any] | None:
        if job_id != "reconcile-1":
            return None
        change = {"field": "notes", "old": "old note", "new": "new note"}
        outcome = {
            "tenant_id": "t-1",
            "tenant_name": "Acme Ltd.",
            "result": "updated",
            "reason": "notes differ",
            "client_id": "c-1",
            "changes": [change],
        }
        result = {"dry_run": True, "created": 0, "updated": 1, "changes": [outcome]}
        return {
            "id": job_id,
            "kind": "reconcile",
            "state": "finished",
            "result": result,
        }

    def depth(self) -> int:
        return len(self.upserts)


def environ_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "ACRONIS_BASE_URL": "http://127.0.0.1:9/api/2",
        "ACRONIS_CLIENT_ID": "client",
        "ACRONIS_CLIENT_SECRET": SECRETS[0],
        "ACRONIS_TENANT_ID": str(uuid.uuid4()),
        "ALGA_BASE_URL": "http://127.0.0.1:9/api/v1",
        "ALGA_API_TOKEN": SECRETS[1],
        "SYNC_API_TOKEN": SECRETS[3],
        "ADMIN_USERNAME": "boss",
        "ADMIN_PASSWORD": PASSWORD,
        "HTTP_MAX_ATTEMPTS": "1",
        "HTTP_CONNECT_TIMEOUT": "1",
        "MAPPING_FILE": str(ROOT / "mapping.yaml"),
        "SYNC_CRON": "0 * * * *",
        "DATA_DIR": str(tmp_path / "data"),
        **extra,
    }


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(environ_for(tmp_path))


@pytest.fixture
def app(settings: Settings, fake_redis: fakeredis.FakeRedis, queue) -> Flask:
    return create_app(settings, fake_redis, jobs=queue)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def token_of(response: TestResponse) -> str:
    found = TOKEN.search(response.get_data(as_text=True))
    assert found is not None, response.get_data(as_text=True)
    return found.group(1)


def log_in(
    client: FlaskClient, password: str = PASSWORD, username: str = "boss", **kw: Any
) -> TestResponse:
    token = token_of(client.get("/login"))
    form = {"username": username, "password": password, "csrf_token": token}
    return client.post("/login", data=form, **kw)


@pytest.fixture
def admin(client: FlaskClient) -> FlaskClient:
    assert log_in(client).status_code == 302
    return client


def post(client: FlaskClient, path: str, seen: str, **form: str) -> TestResponse:
    """Submit a form of page ``seen`` as a browser does, with its CSRF token."""
    return client.post(path, data={**form, "csrf_token": token_of(client.get(seen))})


def flashes(response: TestResponse) -> list[str]:
    return re.findall(
        r'class="flash[^"]*"[^>]*>([^<]*)<', response.get_data(as_text=True)
    )


# The guard and the login


@pytest.mark.parametrize("path", PAGES)
def test_every_admin_page_sends_a_stranger_to_the_login(client, path) -> None:
    answer = client.get(path)

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=")


def test_the_right_password_opens_the_pages_and_logging_out_closes_them(
    client: FlaskClient,
) -> None:
    answer = log_in(client)

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin"
    assert client.get("/admin").status_code == 200
    assert client.get("/login").headers["Location"] == "/admin"

    assert post(client, "/logout", "/admin").headers["Location"] == "/login"
    assert client.get("/admin").status_code == 302


def test_a_login_returns_to_the_page_asked_for_and_never_elsewhere(client) -> None:
    target = client.get("/admin/links?q=acme").headers["Location"]

    assert log_in(client, query_string={"next": "/admin/links?q=acme"}).headers[
        "Location"
    ] == ("/admin/links?q=acme")
    assert target == "/login?next=/admin/links?q%3Dacme"
    for bad in ("https://evil.example/admin", "//evil.example/admin", "/docs"):
        assert safe_next(bad) == "/admin"


def test_a_login_issues_a_fresh_session_and_csrf_token(client: FlaskClient) -> None:
    before = token_of(client.get("/login"))
    log_in(client)
    after = token_of(client.get("/admin"))

    assert before != after
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only
    assert cookie.same_site == "Lax"


def test_a_wrong_password_is_refused_with_401_and_no_session(client) -> None:
    answer = log_in(client, password="not it")

    assert answer.status_code == 401
    assert "wrong username or password" in answer.get_data(as_text=True)
    assert client.get("/admin").status_code == 302


def test_five_wrong_passwords_lock_the_login_with_a_growing_retry_after(
    client: FlaskClient,
) -> None:
    for _ in range(5):
        assert log_in(client, password="guess").status_code == 401

    refused = log_in(client)

    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert "Too many wrong passwords" in refused.text
    assert 'href="/login"' in refused.text
    first_wait = int(refused.headers["Retry-After"])
    assert 0 < first_wait <= 15 * 60
    for _ in range(2):
        log_in(client)
    held_off = log_in(client, password="guess")
    assert held_off.status_code == 429
    assert int(held_off.headers["Retry-After"]) > 15 * 60


def test_wrong_passwords_from_one_address_lock_out_that_address_only(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    attacker = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(5):
        log_in(client, password="guess", username="boss", environ_base=attacker)

    refused = log_in(client, environ_base=attacker)
    admin = log_in(client, environ_base={"REMOTE_ADDR": "10.0.0.99"})

    assert refused.status_code == 429
    assert admin.status_code == 302
    assert fake_redis.keys("*boss*") == []


def test_usernames_sent_to_the_login_never_become_redis_keys(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    for number in range(3):
        log_in(client, password="guess", username=f"chosen-by-attacker-{number}")

    assert fake_redis.keys("*chosen-by-attacker*") == []
    assert fake_redis.keys("*login-limit*") != []


def test_the_environment_login_wins_over_the_saved_one(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    store = SettingsStore.from_environ(environ)
    store.save({}, admin=Admin("owner", hash_password("a saved password")))
    client = create_app(redis=fakeredis.FakeRedis(), environ=environ).test_client()

    assert (
        log_in(client, password="a saved password", username="owner").status_code == 401
    )
    assert log_in(client).status_code == 302
    assert client.get("/admin/settings").status_code == 200


def test_without_an_environment_password_the_saved_login_is_the_one(
    tmp_path: Path,
) -> None:
    environ = environ_for(tmp_path, ADMIN_PASSWORD="")
    store = SettingsStore.from_environ(environ)
    store.save({}, admin=Admin("owner", hash_password("a saved password")))
    client = create_app(redis=fakeredis.FakeRedis(), environ=environ).test_client()

    assert log_in(client).status_code == 401
    answer = log_in(client, password="a saved password", username="owner")
    assert answer.status_code == 302
    assert client.get("/admin/settings").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/login",
        "/logout",
        "/admin/actions/sync",
        "/admin/actions/dry-run",
        "/admin/actions/requeue",
        "/admin/links/6f0e2c55-27a4-4b5e-9a47-3d4f1c2b9e10/sync",
        "/admin/onboarding/link-only",
        "/admin/settings/reset",
    ],
)
def test_a_post_without_its_csrf_token_is_refused(admin, queue, path) -> None:
    answer = admin.post(path, data={"username": "boss", "password": PASSWORD})

    assert answer.status_code == 400
    assert answer.mimetype == "text/html"
    assert "The form has expired" in answer.text
    assert 'id="problem-back"' in answer.text
    assert queue.reconciles == [] and queue.upserts == []


# The overview


def brief(started: str, created: int, updated: int, failed: int) -> str:
    counts = {"created": created, "updated": updated, "unchanged": 4, "skipped": 0}
    return json.dumps({"started_at": started, **counts, "failed": failed, "queued": 1})


def test_the_overview_shows_runs_next_run_and_one_chart_group_per_run(
    admin: FlaskClient, fake_redis: fakeredis.FakeRedis, settings: Settings
) -> None:
    key = Keys(settings.redis_prefix).run_history
    for number in range(3):
        fake_redis.lpush(key, brief(f"2024-05-0{number + 1}T10:00:00+00:00", 2, 1, 0))

    page = admin.get("/admin").get_data(as_text=True)

    assert page.count('data-test="chart-run"') == 3
    assert page.count('data-test="run-row"') == 3
    assert 'id="chart-legend"' in page and "Failed" in page
    assert 'aria-label="run of 2024-05-01T10:00:00+00:00: 2 created' in page
    assert re.search(r'id="next-run">\d{4}-\d\d-\d\dT\d\d:00', page)
    assert re.search(r'id="queue-depth">0<', page)
    assert re.search(r'id="failed-count">0<', page)


def test_the_chart_scales_its_bars_to_the_largest_count() -> None:
    runs = [{"started_at": "a", "created": 10}, {"started_at": "b", "failed": 5}]

    svg = str(run_chart(runs))

    assert svg.count('<g class="run"') == 2
    assert 'class="bar bar-created" x="42.0" y="12.0"' in svg
    assert 'height="80.0"' in svg  # five failures: half of the tallest bar
    assert '<title id="runs-chart-title">' in svg
    assert "No run has been recorded yet." in str(run_chart([]))


def test_the_next_run_follows_cron_and_time_zone(settings: Settings) -> None:
    berlin = settings.model_copy(
        update={"sync_cron": "30 2 * * *", "sync_timezone": "Europe/Berlin"}
    )
    now = datetime(2024, 5, 1, 12, 0, tzinfo=ZoneInfo("UTC"))

    found = next_run(berlin, now)

    assert found == datetime(2024, 5, 2, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert next_run(settings.model_copy(update={"sync_cron": ""}), now) is None


# Actions


def test_run_a_sync_now_queues_a_reconcile(admin: FlaskClient, queue) -> None:
    answer = post(admin, "/admin/actions/sync", "/admin/actions")

    assert queue.reconciles == [False]
    assert answer.headers["Location"] == "/admin/jobs/reconcile-1"


def test_a_dry_run_leads_to_its_job_and_shows_the_planned_diff(
    admin: FlaskClient, queue
) -> None:
    answer = post(admin, "/admin/actions/dry-run", "/admin/actions")

    assert queue.reconciles == [True]
    page = admin.get(answer.headers["Location"])
    text = page.get_data(as_text=True)
    assert 'data-state="finished"' in text
    assert "Refresh" not in page.headers
    assert 'data-test="job-diff"' in text
    assert "old note" in text and "new note" in text
    assert admin.get("/admin/jobs/unknown-1").status_code == 404


def test_requeue_lists_failed_jobs_then_requeues_them(
    admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    failed = queueing.FailedJob(
        "upsert-x-1", "upsert", "x", "AuthError: key refused", "2024-05-01"
    )
    monkeypatch.setattr(queueing, "failed_jobs", lambda r, s: [failed])

    def requeue(redis: Any, settings: Any) -> list[str]:
        calls.append("requeue")
        return ["upsert-x-1"]

    monkeypatch.setattr(queueing, "requeue_failed", requeue)

    page = admin.get("/admin/actions").get_data(as_text=True)
    assert "AuthError: key refused" in page and 'id="requeue-failed"' in page
    answer = post(admin, "/admin/actions/requeue", "/admin/actions")

    assert calls == ["requeue"]
    assert "1 failed job requeued." in flashes(admin.get(answer.headers["Location"]))


# Links without the remotes: the table still lists every link by id


@pytest.fixture
def many_links(fake_redis: fakeredis.FakeRedis, settings: Settings) -> list[str]:
    store = RedisLinkStore(fake_redis, Keys(settings.redis_prefix))
    tenants = sorted(str(uuid.UUID(int=number + 1)) for number in range(30))
    for number, tenant_id in enumerate(tenants):
        store.claim(Link(tenant_id, f"client-{number:02}", outcome="updated"))
    return tenants


def rows(response: TestResponse) -> list[str]:
    return re.findall(r'data-test="link-row" data-tenant-id="([^"]+)"', response.text)


def test_links_are_paged_and_searched(admin: FlaskClient, many_links) -> None:
    first = admin.get("/admin/links")
    second = admin.get("/admin/links?page=2")

    assert len(rows(first)) == 25 and len(rows(second)) == 5
    assert set(rows(first) + rows(second)) == set(many_links)
    assert 'id="links-names-missing"' in first.text
    assert "Page 2 of 2" in second.text
    found = admin.get("/admin/links", query_string={"q": "CLIENT-07"})
    assert rows(found) == [many_links[7]]
    assert rows(admin.get("/admin/links?q=nothing-like-it")) == []


def test_sync_now_queues_the_tenant_and_flashes_the_job(
    admin: FlaskClient, queue, many_links
) -> None:
    tenant = many_links[3]
    answer = post(admin, f"/admin/links/{tenant}/sync", "/admin/links", q="x", page="1")

    assert queue.upserts == [(tenant, "admin")]
    assert answer.headers["Location"] == "/admin/links?q=x&page=1"
    assert f"queued as job upsert-{tenant}-1" in flashes(admin.get("/admin/links"))[0]
    post(admin, "/admin/links/not-a-uuid/sync", "/admin/links")
    assert "not a tenant id" in flashes(admin.get("/admin/links"))[0]


# Settings


def test_settings_show_their_sources_and_never_a_secret(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    saved = {"SYNC_TIMEZONE": "Europe/Berlin", "WEBHOOK_SECRET": "whsec_c2F2ZWQ="}
    SettingsStore.from_environ(environ).save(saved)
    client = create_app(redis=fakeredis.FakeRedis(), environ=environ).test_client()
    log_in(client)

    page = client.get("/admin/settings").get_data(as_text=True)

    def row(variable: str) -> tuple[str, str]:
        found = re.search(
            rf'data-variable="{variable}">.*?setting-value">([^<]*)<.*?'
            r'setting-source"[^>]*>([^<]*)<',
            page,
            re.S,
        )
        assert found is not None, variable
        return found.group(1), found.group(2)

    assert row("SYNC_TIMEZONE") == ("Europe/Berlin", "saved")
    assert row("WEBHOOK_SECRET") == ("set", "saved")
    assert row("ACRONIS_CLIENT_SECRET") == ("set", "environment")
    assert row("ALGA_WEBHOOK_SECRET") == ("not set", "default")
    assert row("SYNC_QUEUE") == ("sync", "default")
    for secret in (*SECRETS, "whsec_c2F2ZWQ="):
        assert secret not in page


def test_reset_setup_asks_first_then_forgets_and_logs_out(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    store = SettingsStore.from_environ(environ)
    store.save({"SYNC_TIMEZONE": "UTC"})
    client = create_app(redis=fakeredis.FakeRedis(), environ=environ).test_client()
    log_in(client)

    unconfirmed = post(client, "/admin/settings/reset", "/admin/settings/reset")
    assert unconfirmed.headers["Location"] == "/admin/settings/reset"
    assert store.configured()

    answer = post(
        client, "/admin/settings/reset", "/admin/settings/reset", confirm="reset"
    )
    assert answer.headers["Location"] == "/"
    assert not store.configured()
    assert client.get("/admin").status_code == 302


# The job dashboard


def test_a_logged_in_admin_reaches_the_job_dashboard_without_basic(client) -> None:
    stranger = client.get("/rq/", headers={"Accept": "text/html"})
    assert stranger.status_code == 302
    assert stranger.headers["Location"].startswith("/login?next=")

    log_in(client)

    assert client.get("/rq/", headers={"Accept": "text/html"}).status_code == 200
    assert 'id="rq-link"' in client.get("/admin/actions").text
