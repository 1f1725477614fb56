"""The receiver against hostile input: odd bodies, odd ids, a queue that breaks."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from typing import Any

import fakeredis
import pytest
import redis
from flask import Flask, request
from flask.testing import FlaskClient

from sync.keys import Keys
from sync.links import Link, RedisLinkStore
from sync.settings import UUID_PATTERN, Settings
from tests.unit.test_web_routes import (
    ALGA_SECRET,
    TENANT,
    TOKEN,
    RecordingQueue,
    assert_error,
    post_acronis,
    signed,
)
from tests.unit.test_web_routes import settings as settings
from web import create_app

LIMIT = 2048  # WEBHOOK_MAX_BYTES in the settings fixture
ROOMY_LIMIT = 1024 * 1024
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class FailingQueue(RecordingQueue):
    """A queue that, when broken, fails with something other than a Redis error."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def enqueue_upsert(self, tenant_id: str, *, source: str) -> str:
        if self.broken:
            raise RuntimeError("the queue broke")
        return super().enqueue_upsert(tenant_id, source=source)

    def report(self, job_id: str) -> dict[str, Any] | None:
        self.asked.append(job_id)
        return super().report(job_id)


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def queue() -> FailingQueue:
    return FailingQueue()


@pytest.fixture
def app(settings: Settings, fake_redis: fakeredis.FakeRedis, queue) -> Flask:
    return create_app(settings, fake_redis, jobs=queue)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def roomy_client(settings: Settings, fake_redis, queue) -> FlaskClient:
    """A receiver taking bodies of a megabyte, so that only nesting is refused."""
    roomy = settings.model_copy(update={"max_body_bytes": ROOMY_LIMIT})
    return create_app(roomy, fake_redis, jobs=queue).test_client()


@pytest.fixture
def linked(settings: Settings, fake_redis) -> None:
    store = RedisLinkStore(fake_redis, Keys(settings.redis_prefix))
    store.claim(Link(tenant_id=TENANT, client_id="client-7"))


def chunked(client: FlaskClient, path: str, body: bytes, headers: Any) -> Any:
    """POST ``body`` chunked, as gunicorn passes it on: no length, an ended stream."""
    gunicorn_like = {"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers=headers,
        environ_overrides=gunicorn_like,
    )


def padded(size: int) -> bytes:
    """A JSON body naming TENANT, padded with spaces to exactly ``size`` bytes."""
    body = json.dumps({"tenant_id": TENANT}).encode()
    return body + b" " * (size - len(body))


def alga_signed(client: FlaskClient, body: bytes) -> Any:
    stamp = int(time.time())
    digest = hmac.new(ALGA_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-Alga-Signature": f"t={stamp},v1={digest.hexdigest()}",
    }
    return client.post("/webhooks/alga", data=body, headers=headers)


@pytest.mark.parametrize("size", [LIMIT + 1, 300 * 1024])
def test_a_chunked_body_over_the_limit_is_413(client, queue, size) -> None:
    body = padded(size)
    bearer = {**BEARER, "Content-Type": "application/json"}

    by_token = chunked(client, "/webhooks/acronis", body, bearer)
    by_signature = chunked(client, "/webhooks/acronis", body, signed(body))

    assert_error(by_token, 413, "too_large")
    assert_error(by_signature, 413, "too_large")
    assert queue.upserts == []


def test_a_chunked_body_of_exactly_the_limit_is_taken(client, queue) -> None:
    body = padded(LIMIT)

    response = chunked(client, "/webhooks/acronis", body, signed(body))

    assert response.status_code == 202
    assert queue.upserts == [(TENANT, "webhook")]


def test_a_chunked_alga_body_over_the_limit_is_413(client) -> None:
    # The signature is wrong: the size must be refused before it is looked at.
    headers = {"Content-Type": "application/json", "X-Alga-Signature": "t=1,v1=0"}

    response = chunked(client, "/webhooks/alga", padded(LIMIT + 1), headers)

    assert_error(response, 413, "too_large")


@pytest.mark.parametrize(
    "payload",
    [
        TENANT + "\n",
        [TENANT + "\n"],
        {"tenant_id": TENANT + "\n"},
        {"data": {"id": TENANT + "\n"}},
    ],
)
def test_a_tenant_id_with_a_trailing_newline_is_400(client, queue, payload) -> None:
    assert_error(post_acronis(client, payload), 400, "bad_tenant_id")
    assert queue.upserts == []


def test_the_uuid_pattern_ends_at_the_end_of_the_string() -> None:
    # Callers that use .match must not let a trailing newline through either.
    assert UUID_PATTERN.match(TENANT)
    assert UUID_PATTERN.match(TENANT + "\n") is None
    assert UUID_PATTERN.match(TENANT + "\nx") is None


def brackets(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_data(depth: int) -> bytes:
    """``{"data": {"data": ... {"id": TENANT} ...}}``, ``depth`` levels deep."""
    inner = json.dumps({"id": TENANT}).encode()
    return b'{"data": ' * depth + inner + b"}" * depth


def test_a_hundred_thousand_brackets_are_malformed_json(roomy_client, queue) -> None:
    body = brackets(100_000)

    response = roomy_client.post("/webhooks/acronis", data=body, headers=signed(body))

    assert_error(response, 400, "malformed_json")
    assert queue.upserts == []


@pytest.mark.parametrize(
    ("depth", "code"), [(5, "bad_event"), (900, "bad_event"), (5000, "malformed_json")]
)
def test_deeply_nested_data_objects_are_400(roomy_client, queue, depth, code) -> None:
    body = nested_data(depth)

    response = roomy_client.post("/webhooks/acronis", data=body, headers=signed(body))

    assert_error(response, 400, code)
    assert queue.upserts == []


def test_a_deeply_nested_tenant_id_is_not_printed(roomy_client, queue) -> None:
    body = b'{"tenant_id": ' + brackets(900) + b"}"

    response = roomy_client.post("/webhooks/acronis", data=body, headers=signed(body))

    assert_error(response, 400, "bad_tenant_id")


def test_a_few_levels_of_data_are_still_followed(client, queue) -> None:
    body = nested_data(3)

    response = client.post("/webhooks/acronis", data=body, headers=signed(body))

    assert response.status_code == 202
    assert queue.upserts == [(TENANT, "webhook")]


def test_deeply_nested_alga_json_is_malformed(roomy_client, queue) -> None:
    body = b'{"event": "client.updated", "data": ' + brackets(100_000) + b"}"

    assert_error(alga_signed(roomy_client, body), 400, "malformed_json")
    assert queue.upserts == []


def test_a_deeply_nested_alga_event_name_is_ignored(roomy_client, queue) -> None:
    body = b'{"event": ' + brackets(900) + b', "data": {"client_id": "c"}}'

    response = alga_signed(roomy_client, body)

    assert response.status_code == 202
    assert "ignored" in response.get_json()
    assert queue.upserts == []


@pytest.mark.parametrize(
    "job_id",
    ["\u00fc", "%2e%2e", "a%20b", "*", "a%00b", "it's", "%3Cb%3E", "a.b", "x" * 129],
)
def test_job_ids_outside_the_rq_alphabet_are_404(client, queue, job_id) -> None:
    assert_error(client.get(f"/jobs/{job_id}", headers=BEARER), 404, "not_found")
    assert queue.asked == []


def test_a_job_id_in_the_rq_alphabet_is_looked_up(client, queue) -> None:
    assert client.get("/jobs/reconcile-1", headers=BEARER).status_code == 200
    assert_error(client.get("/jobs/A_b-9", headers=BEARER), 404, "unknown_job")
    assert queue.asked == ["reconcile-1", "A_b-9"]


@pytest.mark.parametrize("job_id", ["\u00fc", "%2e%2e", "a b", "it's", "<b>"])
def test_odd_job_ids_never_reach_rq(settings: Settings, job_id) -> None:
    client = create_app(settings, fakeredis.FakeRedis()).test_client()

    response = client.get(f"/jobs/{job_id}", headers=BEARER)

    assert_error(response, 404, "not_found")


def test_a_failed_enqueue_forgets_the_webhook_id(client, queue) -> None:
    queue.broken = True
    assert_error(post_acronis(client, TENANT, message_id="m1"), 500, "internal_error")

    queue.broken = False
    assert post_acronis(client, TENANT, message_id="m1").status_code == 202
    assert queue.upserts == [(TENANT, "webhook")]


def test_a_failed_alga_enqueue_forgets_the_signature(client, queue, linked) -> None:
    body = json.dumps(
        {"event": "client.updated", "data": {"client_id": "client-7"}}
    ).encode()
    queue.broken = True
    first = alga_signed(client, body)
    queue.broken = False

    assert_error(first, 500, "internal_error")
    assert alga_signed(client, body).status_code == 202
    assert queue.upserts == [(TENANT, "alga")]


def test_metrics_without_redis_is_503(settings: Settings, queue) -> None:
    down = redis.Redis(port=1, socket_connect_timeout=0.2)
    client = create_app(settings, down, jobs=queue).test_client()

    response = client.get("/metrics")

    assert_error(response, 503, "metrics_unavailable")


def test_metrics_with_redis_are_text(client) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert b"sync_queue_depth" in response.data


def test_behind_a_proxy_the_client_address_comes_from_x_forwarded_for(
    settings: Settings, fake_redis: fakeredis.FakeRedis
):
    direct = create_app(settings, fake_redis, jobs=RecordingQueue(), environ={})
    proxied = create_app(
        settings, fake_redis, jobs=RecordingQueue(), environ={"PROXY_HOPS": "1"}
    )
    seen: list[str | None] = []
    for each in (direct, proxied):
        each.before_request(lambda: seen.append(request.remote_addr))
        each.test_client().get(
            "/health",
            headers={"X-Forwarded-For": "203.0.113.9"},
            environ_base={"REMOTE_ADDR": "10.0.0.2"},
        )

    assert seen == ["10.0.0.2", "203.0.113.9"]
