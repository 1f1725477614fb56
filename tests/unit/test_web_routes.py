"""The receiver's routes through Flask's test client, on a fake Redis and queue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from standardwebhooks.webhooks import Webhook

from sync.keys import Keys
from sync.links import Link, RedisLinkStore
from sync.settings import Settings
from web import create_app

SECRET = "whsec_" + base64.b64encode(b"a webhook secret of 32 bytes....").decode()
TOKEN = "api-token-123"
ALGA_SECRET = "alga-secret"
TENANT = "6f0e2c55-27a4-4b5e-9a47-3d4f1c2b9e10"
OTHER = "0a9b8c7d-1111-4222-8333-444455556666"


class RecordingQueue:
    """Stands in for RQ: remembers what was queued."""

    def __init__(self) -> None:
        self.upserts: list[tuple[str, str]] = []
        self.reconciles: list[bool] = []
        self.broken = False

    def enqueue_upsert(self, tenant_id: str, *, source: str) -> str:
        if self.broken:
            raise redis.ConnectionError("down")
        self.upserts.append((tenant_id, source))
        return f"upsert-{tenant_id}-{len(self.upserts)}"

    def enqueue_reconcile(self, *, dry_run: bool, source: str) -> str:
        self.reconciles.append(dry_run)
        return "reconcile-1"

    def report(self, job_id: str) -> dict[str, Any] | None:
        return {"id": job_id, "state": "queued"} if job_id == "reconcile-1" else None

    def depth(self) -> int:
        return len(self.upserts)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "ACRONIS_BASE_URL": "http://127.0.0.1:9/api/2",
            "ACRONIS_CLIENT_ID": "client",
            "ACRONIS_CLIENT_SECRET": "secret",
            "ACRONIS_TENANT_ID": str(uuid.uuid4()),
            "ALGA_BASE_URL": "http://127.0.0.1:9/api/v1",
            "ALGA_API_TOKEN": "alga-token",
            "WEBHOOK_SECRET": SECRET,
            "SYNC_API_TOKEN": TOKEN,
            "ALGA_WEBHOOK_SECRET": ALGA_SECRET,
            "ADMIN_PASSWORD": "admin-pw",
            "WEBHOOK_MAX_BYTES": "2048",
        }
    )


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def app(settings, fake_redis, queue) -> Flask:
    return create_app(settings, fake_redis, jobs=queue)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def signed(body: bytes, *, message_id: str | None = None, at: float | None = None):
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(message_id, moment, body.decode()),
    }


def post_acronis(client: FlaskClient, payload: Any, **options: Any):
    body = json.dumps(payload).encode()
    return client.post("/webhooks/acronis", data=body, headers=signed(body, **options))


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "payload",
    [
        TENANT,
        [TENANT],
        {"tenant_id": TENANT},
        {"tenant": {"id": TENANT}},
        {"data": {"tenant_id": TENANT}},
        {"data": {"id": TENANT}},
        {"type": "tenant.updated", "data": {"tenant": {"id": TENANT}}},
        [{"tenant_id": TENANT}, TENANT.upper()],
    ],
)
def test_each_body_shape_queues_one_upsert(client, queue, payload) -> None:
    response = post_acronis(client, payload)

    assert response.status_code == 202
    assert queue.upserts == [(TENANT, "webhook")]
    assert response.get_json()["jobs"] == [
        {"tenant_id": TENANT, "job_id": f"upsert-{TENANT}-1"}
    ]


def test_a_list_queues_every_tenant(client, queue) -> None:
    assert post_acronis(client, [TENANT, OTHER]).status_code == 202
    assert [tenant for tenant, _ in queue.upserts] == [TENANT, OTHER]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("not-a-uuid", "bad_tenant_id"),
        ([TENANT, "x"], "bad_tenant_id"),
        ({"something": "else"}, "no_tenant"),
        ([], "no_tenant"),
        (42, "no_tenant"),
    ],
)
def test_bodies_without_valid_tenants_are_400(client, queue, payload, code) -> None:
    assert_error(post_acronis(client, payload), 400, code)
    assert queue.upserts == []


def test_a_replayed_webhook_id_is_409(client, queue) -> None:
    assert post_acronis(client, TENANT, message_id="msg_same").status_code == 202

    assert_error(post_acronis(client, TENANT, message_id="msg_same"), 409, "replayed")
    assert len(queue.upserts) == 1


def test_a_stale_webhook_is_401(client, queue) -> None:
    response = post_acronis(client, TENANT, at=time.time() - 600)

    assert_error(response, 401, "stale_timestamp")
    assert queue.upserts == []


def test_an_unsigned_webhook_is_401(client, queue) -> None:
    response = client.post("/webhooks/acronis", json=TENANT)

    assert_error(response, 401, "missing_signature")
    assert queue.upserts == []


def test_a_bearer_token_stands_in_for_a_signature(client, queue) -> None:
    good = {"Authorization": f"Bearer {TOKEN}"}
    bad = {"Authorization": "Bearer nope"}

    assert (
        client.post("/webhooks/acronis", json=TENANT, headers=good).status_code == 202
    )
    assert_error(
        client.post("/webhooks/acronis", json=TENANT, headers=bad), 401, "bad_token"
    )
    assert len(queue.upserts) == 1


def test_a_bare_id_as_text_is_accepted(client, queue) -> None:
    body = TENANT.encode()
    headers = {**signed(body), "Content-Type": "text/plain"}

    assert (
        client.post("/webhooks/acronis", data=body, headers=headers).status_code == 202
    )
    assert queue.upserts == [(TENANT, "webhook")]


def test_malformed_json_is_400(client, queue) -> None:
    body = b'{"tenant_id": '
    response = client.post("/webhooks/acronis", data=body, headers=signed(body))

    assert_error(response, 400, "malformed_json")
    assert queue.upserts == []


def test_a_wrong_content_type_is_415(client, queue) -> None:
    body = b"tenant_id=x"
    headers = {**signed(body), "Content-Type": "application/x-www-form-urlencoded"}

    response = client.post("/webhooks/acronis", data=body, headers=headers)

    assert_error(response, 415, "unsupported_media_type")


def test_an_oversized_body_is_413_before_the_signature(client, queue) -> None:
    body = json.dumps([TENANT] * 100).encode()

    response = client.post("/webhooks/acronis", data=body, headers={})

    assert_error(response, 413, "too_large")
    assert queue.upserts == []


def test_unknown_routes_and_methods_answer_json(client) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")
    wrong_method = client.get("/webhooks/acronis")
    assert_error(wrong_method, 405, "method_not_allowed")
    assert "POST" in wrong_method.headers["Allow"]


def test_an_unexpected_failure_is_a_json_500(app, client) -> None:
    def explode() -> None:
        raise RuntimeError("boom")

    app.add_url_rule("/explode", "explode", explode)

    response = client.get("/explode")

    assert_error(response, 500, "internal_error")
    assert "boom" not in response.get_data(as_text=True)


def test_redis_down_is_503_and_the_id_may_be_retried(client, queue) -> None:
    queue.broken = True
    assert_error(
        post_acronis(client, TENANT, message_id="m1"), 503, "queue_unavailable"
    )

    queue.broken = False
    assert post_acronis(client, TENANT, message_id="m1").status_code == 202


def alga_post(client: FlaskClient, payload: Any, secret: str = ALGA_SECRET):
    body = json.dumps(payload).encode()
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-Alga-Signature": f"t={stamp},v1={digest.hexdigest()}",
    }
    return client.post("/webhooks/alga", data=body, headers=headers)


@pytest.fixture
def linked(settings, fake_redis) -> RedisLinkStore:
    store = RedisLinkStore(fake_redis, Keys(settings.redis_prefix))
    store.claim(Link(tenant_id=TENANT, client_id="client-7"))
    return store


def test_an_alga_client_update_queues_its_tenant(client, queue, linked) -> None:
    response = alga_post(
        client, {"event": "client.updated", "data": {"client_id": "client-7"}}
    )

    assert response.status_code == 202
    assert queue.upserts == [(TENANT, "alga")]


def test_an_alga_client_deletion_drops_the_link(client, queue, linked) -> None:
    response = alga_post(
        client, {"event": "client.deleted", "data": {"client_id": "client-7"}}
    )

    assert response.get_json()["unlinked"] == TENANT
    assert linked.get(TENANT) is None
    assert queue.upserts == []


@pytest.mark.parametrize(
    "payload",
    [
        {"event": "ticket.created", "data": {"ticket_id": "1"}},
        {"event": "client.updated", "data": {"client_id": "not-linked"}},
    ],
)
def test_other_alga_events_are_accepted_and_ignored(client, queue, linked, payload):
    response = alga_post(client, payload)

    assert response.status_code == 202
    assert "ignored" in response.get_json()
    assert queue.upserts == []


def test_an_alga_event_with_a_wrong_secret_is_401(client, queue, linked) -> None:
    payload = {"event": "client.updated", "data": {"client_id": "client-7"}}

    assert_error(alga_post(client, payload, secret="wrong"), 401, "bad_signature")
    assert queue.upserts == []


def test_sync_needs_the_token_or_the_admin_login(client, queue) -> None:
    assert_error(client.post("/sync"), 401, "unauthorized")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    basic = "Basic " + base64.b64encode(b"admin:admin-pw").decode()

    first = client.post("/sync?dry_run=true", headers=bearer)
    second = client.post("/sync", headers={"Authorization": basic})

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.get_json() == {"job_id": "reconcile-1", "dry_run": True}
    assert queue.reconciles == [True, False]


def test_jobs_report_or_404(client) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    assert (
        client.get("/jobs/reconcile-1", headers=bearer).get_json()["state"] == "queued"
    )
    assert_error(client.get("/jobs/nope", headers=bearer), 404, "unknown_job")


def test_health_and_ready(client, fake_redis) -> None:
    assert client.get("/health").get_json() == {"status": "ok"}
    ready = client.get("/ready").get_json()
    assert ready["status"] == "ready"
    assert ready["last_sync_age_seconds"] is None


def test_ready_is_503_when_redis_is_down(settings, queue) -> None:
    down = redis.Redis(port=1, socket_connect_timeout=0.2)
    client = create_app(settings, down, jobs=queue).test_client()

    assert client.get("/health").status_code == 200
    assert_error(client.get("/ready"), 503, "not_ready")


def test_openapi_and_docs_are_served(client) -> None:
    spec = client.get("/openapi.json").get_json()
    docs = client.get("/docs")
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")

    assert "/webhooks/acronis" in spec["paths"]
    assert b"/openapi.json" in client.get("/docs/start.js").data
    assert docs.status_code == 200 and b"swagger-ui-bundle.js" in docs.data
    assert bundle.status_code == 200


def test_no_secret_appears_in_any_answer(client) -> None:
    answers = [
        client.post(
            "/webhooks/acronis", json=TENANT, headers={"Authorization": "Bearer x"}
        ),
        client.post("/sync"),
        client.get("/openapi.json"),
        alga_post(client, {"event": "client.updated"}, secret="wrong"),
    ]

    for answer in answers:
        text = answer.get_data(as_text=True)
        for secret in (SECRET, TOKEN, ALGA_SECRET, "admin-pw"):
            assert secret not in text
