"""The scheduler's one-job-per-slot promise, and a worker outliving a Redis restart."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest
import redis
from rq import Queue

from sandbox.process import free_port
from tests.integration.worker_support import (
    drop_queue,
    queue_env,
    settings_of,
    start_scheduler,
    start_worker,
    stop,
    tracked_processes,
    wait_until,
)
from worker.queueing import enqueue_upsert, job_report

pytestmark = pytest.mark.integration

EVERY_TWO_SECONDS = "* * * * * */2"


@pytest.fixture
def processes():
    yield from tracked_processes()


def reconcile_ids(queue: Queue) -> list[str]:
    return [job_id for job_id in queue.get_job_ids() if job_id.startswith("reconcile-")]


def test_two_schedulers_enqueue_one_reconcile_per_slot(
    start_sandbox, redis_url, processes
):
    sandbox = start_sandbox("--tenants", "2")
    env = queue_env(sandbox.env, SYNC_CRON=EVERY_TWO_SECONDS)
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(env["SYNC_QUEUE"], connection=connection)
    try:
        first = start_scheduler(processes, env)
        second = start_scheduler(processes, env)
        wait_until(lambda: len(reconcile_ids(queue)) >= 3, 20)
        stop(first)
        stop(second)
        ids = reconcile_ids(queue)
        assert len(ids) == len(set(ids))
        slots = sorted(int(job_id.split("-")[1]) for job_id in ids)
        assert all(later - earlier == 2 for earlier, later in pairwise(slots))

        restarted_at = time.time()
        start_scheduler(processes, env)
        wait_until(lambda: len(reconcile_ids(queue)) > len(ids), 20)
        after = reconcile_ids(queue)
        assert len(after) == len(set(after))
        new = {int(job_id.split("-")[1]) for job_id in set(after) - set(ids)}
        assert min(new) >= restarted_at
    finally:
        drop_queue(connection, env["SYNC_QUEUE"])


@pytest.fixture
def private_redis() -> Iterator[tuple[str, Callable[[], None]]]:
    """A redis-server of this test's own, with an append-only file; restartable."""
    folder = Path(tempfile.mkdtemp())
    port = free_port()
    command = [
        shutil.which("redis-server") or "redis-server",
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
        "--appendonly", "yes", "--save", "",
    ]  # fmt: skip
    running: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        running.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: _answers(url), 10)

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", start
    finally:
        for process in running:
            process.terminate()
            process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def test_a_worker_carries_on_after_redis_restarts(
    start_sandbox, private_redis, processes
):
    url, start_redis = private_redis
    sandbox = start_sandbox("--tenants", "4")
    env = queue_env(sandbox.env, REDIS_URL=url)
    settings = settings_of(env)
    connection = redis.Redis.from_url(url)
    active = [t for t in sandbox.customers() if t["enabled"] and not t["deleted_at"]]
    first, second = active[:2]
    start_worker(processes, env)
    done = enqueue_upsert(connection, settings, first["id"], source="test")
    wait_until(
        lambda: (
            (job_report(connection, settings, done) or {}).get("state") == "finished"
        )
    )

    connection.shutdown(nosave=False)
    time.sleep(2)
    start_redis()

    survived = job_report(connection, settings, done)
    assert survived is not None and survived["state"] == "finished"
    job_id = enqueue_upsert(connection, settings, second["id"], source="test")
    wait_until(
        lambda: (
            (job_report(connection, settings, job_id) or {}).get("state") == "finished"
        ),
        60,
    )
    names = {client["client_name"] for client in sandbox.clients()}
    assert {first["name"].strip(), second["name"].strip()} <= names
