"""The receiver as deployed: gunicorn, a real ``rq worker`` and a sandbox."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
from rq import Queue

from bench.webhooks import run_web, run_worker, signed_headers
from sandbox.process import free_port
from tests.integration.conftest import Sandbox

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "aW50ZWdyYXRpb24gdGVzdCBzZWNyZXQsIDMyIGJ5dGVz"
TOKEN = "integration-token"
DEADLINE = 20.0


@pytest.fixture
def service_env(start_sandbox, redis_url, redis_prefix) -> Iterator[Sandbox]:
    """A sandbox, and the receiver's and worker's settings on a queue of its own."""
    sandbox = start_sandbox("--tenants", "12")
    queue = f"{redis_prefix}-queue"
    sandbox.env.update(
        WEBHOOK_SECRET=SECRET,
        SYNC_API_TOKEN=TOKEN,
        ALGA_WEBHOOK_SECRET="alga-secret",
        SYNC_QUEUE=queue,
        SYNC_JOB_TIMEOUT="10",
        ACRONIS_POLL_SECONDS="0",
        WEB_ACCESS_LOG="0",
        WEBHOOK_MAX_BYTES="4096",
        LOG_LEVEL="WARNING",
    )
    yield sandbox
    try:
        connection = redis.Redis.from_url(sandbox.env["REDIS_URL"])
        Queue(queue, connection=connection).delete(delete_jobs=True)
        for key in connection.scan_iter(f"rq:*{queue}*"):
            connection.delete(key)
    except redis.RedisError:
        pass


def post_webhook(base: str, payload: Any, message_id: str = "") -> requests.Response:
    body = json.dumps(payload).encode()
    headers = signed_headers(SECRET, body, message_id)
    return requests.post(
        f"{base}/webhooks/acronis", data=body, headers=headers, timeout=10
    )


def new_tenant(sandbox: Sandbox) -> str:
    """A customer tenant that has no AlgaPSA client yet."""
    taken = json.dumps(sandbox.clients())
    for tenant in sandbox.customers():
        if (
            tenant["enabled"]
            and tenant["deleted_at"] is None
            and tenant["id"] not in taken
        ):
            return str(tenant["id"])
    raise AssertionError("the sandbox has no tenant without a client")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")


def has_client(sandbox: Sandbox, tenant_id: str) -> bool:
    return tenant_id in json.dumps(sandbox.clients())


def queue_idle(env: dict[str, str]) -> bool:
    queue = Queue(env["SYNC_QUEUE"], connection=redis.Redis.from_url(env["REDIS_URL"]))
    return queue.count == 0 and queue.started_job_registry.count == 0


def test_a_signed_webhook_reaches_a_worker_and_algapsa(service_env) -> None:
    tenant_id = new_tenant(service_env)

    with run_web(service_env.env) as base, run_worker(service_env.env):
        answer = post_webhook(
            base, {"type": "tenant.updated", "data": {"id": tenant_id}}
        )
        assert answer.status_code == 202, answer.text
        wait_for(lambda: has_client(service_env, tenant_id), "the client in AlgaPSA")

        job_id = answer.json()["jobs"][0]["job_id"]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        wait_for(
            lambda: (
                requests.get(f"{base}/jobs/{job_id}", headers=auth, timeout=5)
                .json()
                .get("state")
                == "finished"
            ),
            "the job to finish",
        )
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "text/plain" in metrics.headers["Content-Type"]


def test_fifty_concurrent_webhooks_make_one_write(service_env) -> None:
    tenant_id = new_tenant(service_env)
    before = service_env.alga_writes()

    with run_web(service_env.env) as base, run_worker(service_env.env):
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda _: post_webhook(base, tenant_id), range(50)))
        assert [a.status_code for a in answers] == [202] * 50
        wait_for(lambda: has_client(service_env, tenant_id), "the client in AlgaPSA")
        wait_for(lambda: queue_idle(service_env.env), "the queue to drain")

    assert service_env.alga_writes() - before == 1
    matching = [c for c in service_env.clients() if tenant_id in json.dumps(c)]
    assert len(matching) == 1


def bad_requests(tenant_id: str) -> list[tuple[str, dict[str, Any], int]]:
    """Each request the receiver must refuse, with the status it must answer."""
    body = json.dumps({"tenant_id": tenant_id}).encode()
    stale = signed_headers(SECRET, body)
    stale["webhook-timestamp"] = str(int(time.time()) - 3600)
    wrong = signed_headers(
        "whsec_" + "b3RoZXIgc2VjcmV0IG9mIDMyIGJ5dGVzLi4uLi4uLi4=", body
    )
    malformed = b'{"tenant_id": '
    huge = json.dumps([tenant_id] * 200).encode()
    form = {**signed_headers(SECRET, body), "Content-Type": "application/xml"}
    return [
        (
            "malformed",
            {"data": malformed, "headers": signed_headers(SECRET, malformed)},
            400,
        ),
        ("oversized", {"data": huge, "headers": signed_headers(SECRET, huge)}, 413),
        (
            "unsigned",
            {"data": body, "headers": {"Content-Type": "application/json"}},
            401,
        ),
        ("wrong secret", {"data": body, "headers": wrong}, 401),
        ("stale", {"data": body, "headers": stale}, 401),
        ("wrong type", {"data": body, "headers": form}, 415),
        (
            "bad bearer",
            {
                "data": body,
                "headers": {
                    "Authorization": "Bearer x",
                    "Content-Type": "application/json",
                },
            },
            401,
        ),
        (
            "not a uuid",
            {"json": "nope", "headers": {"Authorization": f"Bearer {TOKEN}"}},
            400,
        ),
    ]


def test_bad_requests_are_refused_and_queue_nothing(service_env) -> None:
    tenant_id = new_tenant(service_env)

    with run_web(service_env.env) as base:
        url = f"{base}/webhooks/acronis"
        for name, options, status in bad_requests(tenant_id):
            answer = requests.post(url, timeout=10, **options)
            assert answer.status_code == status, name
            assert answer.json()["error"]["code"], name
        assert requests.get(url, timeout=10).status_code == 405
        assert requests.get(f"{base}/nowhere", timeout=10).json()["error"]["code"]

        replayed = post_webhook(base, tenant_id, message_id="msg_once")
        assert replayed.status_code == 202
        depth = requests.get(f"{base}/ready", timeout=10).json()["queue_depth"]
        assert post_webhook(base, tenant_id, message_id="msg_once").status_code == 409

    assert depth == 1
    assert not has_client(service_env, tenant_id)


class PrivateRedis:
    """A redis-server of this test's own, which the test may stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = tempfile.mkdtemp()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", self.folder]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for(self.answers, "the private Redis to start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def answers(self) -> bool:
        try:
            return bool(
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
            )
        except redis.RedisError:
            return False


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_service_rides_out_a_redis_restart(service_env, own_redis) -> None:
    env = {**service_env.env, "REDIS_URL": own_redis.url}
    first, second = new_tenant(service_env), ""

    with run_web(env) as base, run_worker(env):
        assert post_webhook(base, first).status_code == 202
        wait_for(lambda: has_client(service_env, first), "the first client")

        own_redis.stop()
        refused = post_webhook(base, first)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "queue_unavailable"
        assert requests.get(f"{base}/ready", timeout=10).status_code == 503
        assert requests.get(f"{base}/health", timeout=10).status_code == 200

        own_redis.start()
        second = new_tenant(service_env)
        wait_for(lambda: post_webhook(base, second).status_code == 202, "a 202 again")
        wait_for(lambda: has_client(service_env, second), "the worker to resume")
