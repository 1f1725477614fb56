"""The job dashboard under /rq: mounted with a Redis URL, always guarded."""

from __future__ import annotations

import base64
import socket

import fakeredis
import pytest
from flask.testing import FlaskClient

from sync.settings import Settings
from web import create_app

BASE_ENV = {
    "ACRONIS_BASE_URL": "http://127.0.0.1:9/api/2",
    "ACRONIS_CLIENT_ID": "client",
    "ACRONIS_CLIENT_SECRET": "secret",
    "ACRONIS_TENANT_ID": "0b7c4c8e-3f0a-4a4e-9a51-6f1d2f6a7c11",
    "ALGA_BASE_URL": "http://127.0.0.1:9/api/v1",
    "ALGA_API_TOKEN": "token",
}
PASSWORD = "correct horse battery"


def basic(username: str, password: str) -> dict[str, str]:
    raw = f"{username}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def closed_redis_url() -> str:
    """A loopback address where nothing listens: the dashboard must not need Redis."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def make_client(redis_url: str, **extra: str) -> FlaskClient:
    """The whole app, whose dashboard reads ``redis_url``; the rest a fake Redis."""
    settings = Settings.from_env({**BASE_ENV, "REDIS_URL": redis_url, **extra})
    return create_app(settings, fakeredis.FakeRedis()).test_client()


@pytest.fixture
def client(closed_redis_url: str) -> FlaskClient:
    return make_client(closed_redis_url, ADMIN_PASSWORD=PASSWORD)


@pytest.mark.parametrize(
    "path", ["/rq", "/rq/", "/rq/0/data/queues.json", "/rq/static/css/main.css"]
)
def test_no_credentials_get_a_login_challenge(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert response.is_json
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_requeue_all_is_refused_without_credentials(client: FlaskClient) -> None:
    # requeue-all is a GET in rq-dashboard: the guard is all that stops it.
    assert client.get("/rq/requeue/sync").status_code == 401
    assert client.post("/rq/requeue/sync").status_code == 401


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("admin", "wrong"),
        ("admin", ""),
        ("root", PASSWORD),
        ("admin", PASSWORD + "x"),
        ("admin", PASSWORD.upper()),
    ],
)
def test_wrong_credentials_are_refused(
    client: FlaskClient, username: str, password: str
) -> None:
    response = client.get("/rq/", headers=basic(username, password))

    assert response.status_code == 401


def test_bearer_token_is_not_a_login(client: FlaskClient) -> None:
    response = client.get("/rq/", headers={"Authorization": f"Bearer {PASSWORD}"})

    assert response.status_code == 401


def test_right_credentials_reach_the_dashboard(client: FlaskClient) -> None:
    headers = basic("admin", PASSWORD)

    page = client.get("/rq/", headers=headers)
    stylesheet = client.get("/rq/static/css/main.css", headers=headers)

    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert stylesheet.status_code == 200
    assert stylesheet.mimetype == "text/css"


def test_custom_admin_username(closed_redis_url: str) -> None:
    client = make_client(
        closed_redis_url, ADMIN_USERNAME="ops", ADMIN_PASSWORD=PASSWORD
    )

    assert client.get("/rq/", headers=basic("admin", PASSWORD)).status_code == 401
    assert client.get("/rq/", headers=basic("ops", PASSWORD)).status_code == 200


def test_other_routes_are_left_alone(client: FlaskClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/rqx").status_code == 404


@pytest.mark.parametrize("extra", [{}, {"ADMIN_PASSWORD": ""}])
def test_without_admin_password_no_basic_login_is_taken(
    closed_redis_url: str, extra: dict[str, str]
) -> None:
    client = make_client(closed_redis_url, **extra)

    for headers in ({}, basic("admin", ""), basic("admin", "admin")):
        for path in ("/rq/", "/rq/requeue/sync"):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 401
            assert "WWW-Authenticate" not in answer.headers
    browser = client.get("/rq/", headers={"Accept": "text/html"})
    assert browser.status_code == 302
    assert browser.headers["Location"] == "/login?next=%2Frq%2F"
    assert client.get("/health").status_code == 200


def test_without_redis_the_dashboard_is_not_there() -> None:
    client = make_client("", ADMIN_PASSWORD=PASSWORD)

    assert client.get("/rq/", headers=basic("admin", PASSWORD)).status_code == 404


OWN = "http://localhost"
ADMIN = basic("admin", PASSWORD)


@pytest.fixture
def acting_client(client: FlaskClient) -> FlaskClient:
    """The dashboard on a fake Redis, so that a request let through succeeds."""
    client.application.redis_conn = fakeredis.FakeRedis()  # type: ignore[attr-defined]
    return client


def assert_refused(response) -> None:
    assert response.status_code == 403
    assert response.is_json
    assert response.get_json()["error"]["code"] == "cross_site"


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
def test_a_request_from_another_site_is_refused(client: FlaskClient, site) -> None:
    response = client.get("/rq/", headers={**ADMIN, "Sec-Fetch-Site": site})

    assert_refused(response)


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_a_request_from_this_site_is_let_on(client: FlaskClient, site) -> None:
    response = client.get("/rq/", headers={**ADMIN, "Sec-Fetch-Site": site})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example",
        "http://localhost:8080",
        "null",
        "javascript://localhost",
    ],
)
def test_a_foreign_origin_is_refused(acting_client: FlaskClient, origin) -> None:
    headers = {**ADMIN, "Origin": origin}

    assert_refused(acting_client.get("/rq/", headers=headers))
    assert_refused(acting_client.post("/rq/requeue/sync", headers=headers))


def test_a_foreign_origin_is_refused_before_the_login(client: FlaskClient) -> None:
    assert_refused(client.get("/rq/", headers={"Origin": "https://evil.example"}))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/rq/requeue/sync"),
        ("GET", "/rq/requeue/sync"),
        ("POST", "/rq/job/some-job/delete"),
        ("POST", "/rq/job/some-job/requeue"),
        ("POST", "/rq/queue/sync/failed/empty"),
        ("POST", "/rq/queue/sync/compact"),
    ],
)
def test_a_change_without_origin_or_referer_is_refused(
    acting_client: FlaskClient, method: str, path: str
) -> None:
    response = acting_client.open(path, method=method, headers=ADMIN)

    assert_refused(response)


def test_a_change_with_a_foreign_referer_is_refused(acting_client) -> None:
    headers = {**ADMIN, "Referer": "https://evil.example/rq/"}

    assert_refused(acting_client.get("/rq/requeue/sync", headers=headers))


@pytest.mark.parametrize(
    "proof", [{"Origin": OWN}, {"Referer": OWN + "/rq/0/view/jobs"}]
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_change_from_the_dashboard_itself_goes_through(
    acting_client: FlaskClient, proof: dict[str, str], method: str
) -> None:
    response = acting_client.open(
        "/rq/requeue/sync", method=method, headers={**ADMIN, **proof}
    )

    assert response.status_code == 200
    assert response.get_json() == {"status": "OK", "count": 0}


def test_reading_needs_no_origin(client: FlaskClient) -> None:
    assert client.get("/rq/", headers=ADMIN).status_code == 200
