"""One admin login everywhere, sessions kept in Redis, and the pages' headers."""

from __future__ import annotations

import base64
from pathlib import Path

import fakeredis
import pytest
from flask.testing import FlaskClient

from sync.keys import Keys
from sync.saved_settings import Admin, SettingsStore, hash_password
from sync.settings import Settings
from tests.unit.test_admin import (
    PASSWORD,
    RecordingQueue,
    environ_for,
    log_in,
    post,
)
from web import create_app

SAVED_PASSWORD = "a saved password"
REDIS_PASSWORD = "redis-pw-in-url"


def basic(username: str, password: str) -> dict[str, str]:
    raw = f"{username}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


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
def client(
    settings: Settings, fake_redis: fakeredis.FakeRedis, queue: RecordingQueue
) -> FlaskClient:
    return create_app(settings, fake_redis, jobs=queue).test_client()


def session_keys(redis: fakeredis.FakeRedis, settings: Settings) -> list[bytes]:
    pattern = Keys(settings.redis_prefix).admin_session_pattern
    return list(redis.scan_iter(match=pattern))


@pytest.fixture
def saved_client(tmp_path: Path, fake_redis: fakeredis.FakeRedis) -> FlaskClient:
    """An app whose only login is the one the setup saved."""
    environ = environ_for(
        tmp_path, ADMIN_PASSWORD="", REDIS_URL=f"redis://:{REDIS_PASSWORD}@h:6379/0"
    )
    store = SettingsStore.from_environ(environ)
    store.save(
        {"SYNC_TIMEZONE": "UTC"}, admin=Admin("owner", hash_password(SAVED_PASSWORD))
    )
    app = create_app(redis=fake_redis, jobs=RecordingQueue(), environ=environ)
    return app.test_client()


# Sessions


def test_a_login_keeps_its_session_in_redis_for_the_session_lifetime(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis, settings: Settings
) -> None:
    log_in(client)

    [key] = session_keys(fake_redis, settings)
    assert fake_redis.get(key) == b"boss"
    assert 12 * 3600 - 5 < fake_redis.ttl(key) <= 12 * 3600


def test_a_cookie_replayed_after_logout_opens_nothing(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis, settings: Settings
) -> None:
    log_in(client)
    cookie = client.get_cookie("session")
    assert cookie is not None

    post(client, "/logout", "/admin")
    client.set_cookie("session", cookie.value)

    assert session_keys(fake_redis, settings) == []
    assert client.get("/admin").status_code == 302
    assert client.get("/rq/", headers={"Accept": "text/html"}).status_code == 302
    assert client.get("/jobs/reconcile-1").status_code == 401


def test_a_session_gone_from_redis_is_refused(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis, settings: Settings
) -> None:
    log_in(client)
    assert client.get("/admin").status_code == 200

    fake_redis.delete(*session_keys(fake_redis, settings))

    assert client.get("/admin").status_code == 302


def test_reset_setup_ends_every_session(
    saved_client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    other = saved_client.application.test_client()
    for browser in (saved_client, other):
        log_in(browser, password=SAVED_PASSWORD, username="owner")
    keep = b"elsewhere:admin-session:x"
    fake_redis.set(keep, b"owner")
    assert len(fake_redis.keys("*admin-session*")) == 3

    post(
        saved_client, "/admin/settings/reset", "/admin/settings/reset", confirm="reset"
    )

    assert fake_redis.keys("*admin-session*") == [keep]
    assert other.get("/admin").status_code == 302


def test_key_pattern_escapes_a_prefix_with_wildcards() -> None:
    assert Keys("a*b?").admin_session_pattern == "a\\*b\\?:admin-session:*"


# One login in three places


def test_the_saved_login_opens_rq_and_the_api_by_basic(saved_client) -> None:
    right = basic("owner", SAVED_PASSWORD)
    wrong = basic("admin", SAVED_PASSWORD)

    assert saved_client.get("/rq/", headers=right).status_code == 200
    assert saved_client.get("/jobs/reconcile-1", headers=right).status_code == 200
    assert saved_client.get("/rq/", headers=wrong).status_code == 401
    assert saved_client.get("/jobs/reconcile-1", headers=wrong).status_code == 401


def test_the_environment_login_wins_for_rq_and_the_api(tmp_path, fake_redis) -> None:
    environ = environ_for(tmp_path)
    store = SettingsStore.from_environ(environ)
    store.save({}, admin=Admin("owner", hash_password(SAVED_PASSWORD)))
    client = create_app(
        redis=fake_redis, jobs=RecordingQueue(), environ=environ
    ).test_client()

    for path in ("/rq/", "/jobs/reconcile-1"):
        assert client.get(path, headers=basic("boss", PASSWORD)).status_code == 200
        saved = basic("owner", SAVED_PASSWORD)
        assert client.get(path, headers=saved).status_code == 401


# The API with a session


def test_the_api_takes_a_logged_in_session(client: FlaskClient, queue) -> None:
    assert client.get("/jobs/reconcile-1").status_code == 401
    log_in(client)

    assert client.get("/jobs/reconcile-1").status_code == 200
    assert client.get("/preview", query_string={"limit": "x"}).status_code == 400
    started = client.post("/sync", headers={"Origin": "http://localhost"})
    assert started.status_code == 202
    assert queue.reconciles == [False]


def test_a_session_does_not_start_a_sync_for_another_site(client, queue) -> None:
    log_in(client)

    no_origin = client.post("/sync")
    foreign = client.post("/sync", headers={"Origin": "https://evil.example"})
    cross = client.get("/jobs/reconcile-1", headers={"Sec-Fetch-Site": "cross-site"})

    assert [no_origin.status_code, foreign.status_code, cross.status_code] == [
        401,
        401,
        401,
    ]
    assert no_origin.is_json and queue.reconciles == []


# Headers and the settings page


def test_the_job_dashboard_carries_the_admin_page_headers(client) -> None:
    log_in(client)

    answer = client.get("/rq/", headers={"Accept": "text/html"})

    assert answer.status_code == 200
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert "X-Frame-Options" not in client.get("/health").headers


def test_settings_show_a_saved_password_as_set_and_mask_redis_url(
    saved_client: FlaskClient,
) -> None:
    log_in(saved_client, password=SAVED_PASSWORD, username="owner")

    page = saved_client.get("/admin/settings").text

    assert 'data-variable="ADMIN_PASSWORD"' in page
    row = page.split('data-variable="ADMIN_PASSWORD"')[1].split("</tr>")[0]
    assert ">set<" in row
    assert REDIS_PASSWORD not in page
    assert "redis://:***@h:6379/0" in page
