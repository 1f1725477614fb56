"""Jobs run by real `rq worker` processes against a sandbox and a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job
from rq.scheduler import RQScheduler

from sandbox.process import REPO
from sync.keys import Keys
from sync.runtime import build_runtime
from tests.integration.conftest import Sandbox
from tests.integration.worker_support import (
    queue_env,
    settings_of,
    start_worker,
    stop,
    tracked_processes,
    wait_until,
)
from worker.jobs import LOCK_TTL, run_history
from worker.queueing import (
    drop_queue,
    enqueue_reconcile,
    enqueue_upsert,
    job_report,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def processes():
    yield from tracked_processes()


@pytest.fixture
def scene(start_sandbox, redis_url):
    """A sandbox, an environment with a queue of its own, and a Redis client."""
    sandbox = start_sandbox("--tenants", "6")
    env = queue_env(sandbox.env)
    connection = redis.Redis.from_url(redis_url)
    yield sandbox, env, connection
    drop_queue(connection, env["SYNC_QUEUE"])


def active_tenant(sandbox: Sandbox, index: int = 0) -> dict[str, Any]:
    tenants = [
        t for t in sandbox.customers() if t["enabled"] and t["deleted_at"] is None
    ]
    tenant: dict[str, Any] = tenants[index]
    return tenant


def state_of(connection: redis.Redis, env: dict[str, str], job_id: str) -> str:
    report = job_report(connection, settings_of(env), job_id)
    return report["state"] if report else "gone"


def named(sandbox: Sandbox, name: str) -> list[dict[str, Any]]:
    return [c for c in sandbox.clients() if c["client_name"] == name.strip()]


def test_an_upsert_job_creates_the_client(scene, processes):
    sandbox, env, connection = scene
    tenant = active_tenant(sandbox)
    start_worker(processes, env)

    job_id = enqueue_upsert(connection, settings_of(env), tenant["id"], source="test")

    wait_until(lambda: state_of(connection, env, job_id) == "finished")
    assert len(named(sandbox, tenant["name"])) == 1
    report = job_report(connection, settings_of(env), job_id)
    assert report is not None
    assert report["result"]["result"] == "created"


def test_a_burst_for_one_tenant_queues_one_job_and_writes_once(scene, processes):
    sandbox, env, connection = scene
    settings = settings_of(env)
    tenant = active_tenant(sandbox)
    build_runtime(settings).engine().upsert_tenant(tenant["id"])
    sandbox.control(
        "PATCH", f"/acronis/tenants/{tenant['id']}", {"name": "Burst Renamed Ltd"}
    )
    writes = sandbox.alga_writes()

    def enqueue(_: int) -> str:
        return enqueue_upsert(connection, settings, tenant["id"], source="burst")

    with ThreadPoolExecutor(10) as pool:
        ids = set(pool.map(enqueue, range(50)))

    assert len(ids) == 1
    assert Queue(env["SYNC_QUEUE"], connection=connection).count == 1
    start_worker(processes, env)
    (job_id,) = ids
    wait_until(lambda: state_of(connection, env, job_id) == "finished")
    assert sandbox.alga_writes() == writes + 1
    assert len(named(sandbox, "Burst Renamed Ltd")) == 1


def test_a_permanent_error_fails_at_once_and_can_be_requeued(scene, processes):
    sandbox, env, connection = scene
    tenant = active_tenant(sandbox)
    fault = {"service": "alga", "status": 400, "method": "POST", "path": "^/clients$"}
    sandbox.control("POST", "/faults", fault)
    start_worker(processes, env)
    assert run_cli(env, "failed") == "No failed jobs.\n"

    job_id = enqueue_upsert(connection, settings_of(env), tenant["id"], source="test")

    wait_until(lambda: state_of(connection, env, job_id) == "failed")
    job = Job.fetch(job_id, connection=connection)
    assert job.retries_left == 0
    assert retried(connection, env) == 0
    listed = run_cli(env, "failed")
    assert job_id in listed and tenant["id"] in listed and "400" in listed
    assert "No failed jobs." not in listed

    sandbox.control("DELETE", "/faults")
    assert "requeued 1" in run_cli(env, "requeue", "--all")
    wait_until(lambda: state_of(connection, env, job_id) == "finished")
    assert len(named(sandbox, tenant["name"])) == 1


def test_a_retryable_error_is_retried_until_it_succeeds(scene, processes):
    sandbox, env, connection = scene
    tenant = active_tenant(sandbox)
    fault = {"service": "alga", "status": 503, "method": "POST", "path": "^/clients$"}
    sandbox.control("POST", "/faults", {**fault, "times": 2})
    start_worker(processes, env)

    job_id = enqueue_upsert(connection, settings_of(env), tenant["id"], source="test")

    wait_until(lambda: state_of(connection, env, job_id) == "finished")
    assert Job.fetch(job_id, connection=connection).retries_left == 1
    assert retried(connection, env) == 2
    assert len(named(sandbox, tenant["name"])) == 1


def test_a_worker_killed_mid_upsert_leaves_no_duplicate(scene, processes):
    sandbox, env, connection = scene
    env["SYNC_RETRY_DELAYS"] = "3 3 3 3 3 3"
    tenant = active_tenant(sandbox)
    sandbox.control("POST", "/config", {"latency_ms": 1500})
    worker = start_worker(processes, env)
    job_id = enqueue_upsert(connection, settings_of(env), tenant["id"], source="test")
    wait_until(lambda: state_of(connection, env, job_id) == "started")
    time.sleep(2.0)

    stop(worker, signal.SIGKILL)
    sandbox.control("POST", "/config", {"latency_ms": 0})
    # Nothing renews the dead job's lock, so it frees the tenant within seconds.
    lock = Keys(env["SYNC_REDIS_PREFIX"]).tenant_lock(tenant["id"])
    assert 0 < connection.pttl(lock) <= LOCK_TTL * 1000
    wait_until(lambda: not connection.exists(lock), LOCK_TTL + 2)
    # RQ notices an abandoned job a minute after its last heartbeat, at its next
    # maintenance (every 10 minutes by default): run that clean-up now instead.
    queue = Queue(env["SYNC_QUEUE"], connection=connection)
    queue.started_job_registry.cleanup(timestamp=time.time() + 3600)
    # The job died with its worker, so the retry must be scheduled, and the
    # dead worker's scheduler lock lasts a minute: let it expire now too.
    connection.delete(RQScheduler.get_locking_key(env["SYNC_QUEUE"]))
    start_worker(processes, env)

    wait_until(lambda: state_of(connection, env, job_id) == "finished", 90)
    assert len(named(sandbox, tenant["name"])) == 1


def test_a_lock_left_by_a_dead_job_does_not_stall_other_tenants(scene, processes):
    sandbox, env, connection = scene
    # A long job timeout: a worker that waited on a lock for a share of it
    # would leave the other tenant queued for many seconds.
    env.update(SYNC_JOB_TIMEOUT="60", SYNC_RETRY_DELAYS="2 2 2 2 2")
    settings = settings_of(env)
    locked, free = active_tenant(sandbox, 0), active_tenant(sandbox, 1)
    lock = Keys(settings.redis_prefix).tenant_lock(locked["id"])
    connection.set(lock, "the token of a job that died", px=8000)
    start_worker(processes, env)
    queue = Queue(env["SYNC_QUEUE"], connection=connection)
    wait_until(lambda: Worker.count(queue=queue) == 1)

    waiting = enqueue_upsert(connection, settings, locked["id"], source="test")
    started = time.monotonic()
    done = enqueue_upsert(connection, settings, free["id"], source="test")

    wait_until(lambda: state_of(connection, env, done) == "finished", 5)
    assert time.monotonic() - started < 5
    assert state_of(connection, env, waiting) in {"scheduled", "queued", "started"}
    wait_until(lambda: state_of(connection, env, waiting) == "finished", 30)
    assert len(named(sandbox, locked["name"])) == 1
    assert retried(connection, env) >= 1


def test_an_idle_worker_stops_when_asked(scene, processes):
    _, env, _ = scene
    worker = start_worker(processes, env)
    time.sleep(2.0)

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(10) == 0


def test_a_job_dies_with_its_killed_worker(scene, processes):
    sandbox, env, connection = scene
    tenant = active_tenant(sandbox)
    sandbox.control("POST", "/config", {"latency_ms": 3000})
    worker = start_worker(processes, env)
    job_id = enqueue_upsert(connection, settings_of(env), tenant["id"], source="test")
    wait_until(lambda: state_of(connection, env, job_id) == "started")
    wait_until(lambda: job_process(worker.pid))
    horse = job_process(worker.pid)

    os.kill(worker.pid, signal.SIGKILL)

    wait_until(lambda: not alive(horse), 3)
    sandbox.control("POST", "/config", {"latency_ms": 0})


def job_process(worker_pid: int) -> int:
    """The worker's child running a job: RQ gives it a process group of its own."""
    path = Path(f"/proc/{worker_pid}/task/{worker_pid}/children")
    found = [int(child) for child in path.read_text().split()]
    return next((child for child in found if group_of(child) == child), 0)


def group_of(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return 0


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for its parent counts as dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_dropping_a_queue_leaves_none_of_its_keys(scene, processes):
    sandbox, env, connection = scene
    fault = {"service": "alga", "status": 400, "method": "POST", "path": "^/clients$"}
    sandbox.control("POST", "/faults", {**fault, "times": 1})
    start_worker(processes, env)
    settings = settings_of(env)
    ids = [
        enqueue_upsert(
            connection, settings, active_tenant(sandbox, n)["id"], source="t"
        )
        for n in range(2)
    ]
    wait_until(
        lambda: {state_of(connection, env, i) for i in ids} == {"failed", "finished"}
    )
    stop(processes.pop(), signal.SIGTERM)

    assert drop_queue(connection, env["SYNC_QUEUE"]) > 0

    wanted = {env["SYNC_QUEUE"], *ids}
    left = [
        key
        for key in connection.scan_iter(match="rq:*", count=1000)
        if wanted.intersection(key.decode().split(":"))
    ]
    assert left == []
    assert env["SYNC_QUEUE"] not in [q.name for q in Queue.all(connection=connection)]


def retried(connection: redis.Redis, env: dict[str, str]) -> int:
    keys = Keys(env["SYNC_REDIS_PREFIX"])
    return int(connection.hget(keys.metrics("retries"), "upsert") or 0)


def run_cli(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "sync", "--env-file", "/dev/null", *args]
    done = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_reconcile_run_counts_the_outcomes_of_the_upserts_it_queued(scene, processes):
    sandbox, env, connection = scene
    settings = settings_of(env)
    active = [
        t for t in sandbox.customers() if t["enabled"] and t["deleted_at"] is None
    ]
    # The fault matches the raw body, where JSON escapes non-ASCII letters.
    broken = next(t for t in active if t["name"].isascii())
    fault = {
        "service": "alga",
        "status": 400,
        "method": "POST",
        "path": "^/clients$",
        "body_contains": broken["name"],
    }
    sandbox.control("POST", "/faults", fault)
    start_worker(processes, env)

    job_id = enqueue_reconcile(connection, settings, dry_run=False, source="test")

    wait_until(lambda: state_of(connection, env, job_id) == "finished")
    keys = Keys(settings.redis_prefix)

    def settled() -> bool:
        (run,) = run_history(connection, keys)
        return bool(run["created"] + run["failed"] == len(active))

    wait_until(settled)
    (run,) = run_history(connection, keys)
    assert run["queued"] == len(active)
    assert run["created"] == len(active) - 1
    assert run["failed"] == 1
