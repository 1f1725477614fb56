"""The jobs the workers run: upsert one tenant, reconcile all, poll for changes.

Workers are started as ``rq worker --with-scheduler --worker-class
worker.jobs.SyncWorker QUEUE``. The worker builds its Settings from the
environment over the setup's saved settings, and its Runtime, before it forks
a process per job, so a job only pays for its own remote calls; both are
built again when the saved settings change.

The reconcile job fans out: it plans every tenant in one pass, enqueues an
upsert job for each tenant whose plan needs a write, and records a run
summary of what it planned and queued. It applies nothing itself, so that a
slow or failing tenant is retried alone and one long job never holds the
queue. The upsert jobs record their outcome on each tenant's link.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from redis import Redis, RedisError
from redis.exceptions import LockError
from redis.lock import Lock
from rq import Queue, Worker, get_current_job
from rq.job import Job

from sync.acronis import is_customer, parse_timestamp, rfc3339_utc
from sync.errors import ConfigError, RetryableError, SyncError
from sync.keys import Keys
from sync.report import Outcome, RunSummary
from sync.runtime import Runtime, build_runtime
from sync.settings import SettingsWatcher
from worker import metrics
from worker.queueing import (
    POLL,
    RECONCILE,
    UPSERT,
    clear_pending,
    enqueue_upsert,
    run_source,
    tally,
)

log = logging.getLogger(__name__)

HISTORY_LENGTH = 50
# A tenant lock lives this long unless the job holding it renews it, every
# LOCK_RENEW seconds while it runs; so the lock of a job whose process was
# killed frees its tenant within seconds, not at the end of the job timeout.
LOCK_TTL = 10
LOCK_RENEW = LOCK_TTL / 3
# A job finding its tenant locked waits this long, then is given back for a
# retry: the worker moves on to other tenants instead of idling.
LOCK_WAIT = 1
RESTART_DELAY = 2
# prctl's option that sets the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


class TenantBusy(RetryableError):
    """Another worker is syncing this tenant right now."""


class _Runtimes:
    """One Runtime per process, built again when the saved settings change."""

    def __init__(self) -> None:
        self._watcher: SettingsWatcher | None = None
        self._runtime: Runtime | None = None

    def get(self) -> Runtime:
        if self._watcher is None:
            self._watcher = SettingsWatcher(os.environ)
        settings = self._watcher.current()
        if self._runtime is None or self._runtime.settings is not settings:
            self._runtime = build_runtime(settings)
        return self._runtime


_runtimes = _Runtimes()


def runtime() -> Runtime:
    """This process's Runtime: the environment over the setup's saved settings.

    The worker asks for it before each job, before forking, so that a job
    inherits it and a change saved in the setup applies from the next job on.
    """
    return _runtimes.get()


def _prepare() -> None:
    try:
        runtime()
    except ConfigError as exc:
        # The setup may not be done yet; no job is queued before it is.
        log.warning("not configured yet; jobs will fail until it is: %s", exc)


def _redis(current: Runtime) -> Redis:
    if current.redis is None:
        raise ConfigError(
            "Redis does not answer: the queue needs it; check REDIS_URL",
        )
    return current.redis


class SyncWorker(Worker):
    """An RQ worker that builds the Runtime before forking, and outlives Redis.

    RQ's worker quits on an error outside its dequeue loop, such as a
    connection reset while Redis restarts; this one starts its loop again.
    """

    def execute_job(self, job: Job, queue: Queue) -> None:
        _prepare()
        super().execute_job(job, queue)

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()  # type: ignore[no-untyped-call]
        _die_with_worker(self.pid)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        _prepare()
        while True:
            try:
                completed = super().work(*args, **kwargs)
            except RedisError as exc:
                log.warning("worker %s: Redis failed: %s", self.name, exc)
                completed = False
            # An idle worker asked to stop only notes when: it has no job
            # to finish, so RQ leaves _stop_requested unset.
            stopping = self._stop_requested or self._shutdown_requested_date
            if kwargs.get("burst") or stopping:
                return completed
            log.warning("worker %s: starting again in %d s", self.name, RESTART_DELAY)
            time.sleep(RESTART_DELAY)


def _die_with_worker(worker_pid: int | None) -> None:
    """Have the kernel kill this job's process when its worker is killed.

    RQ runs a job in a process group of its own, so a SIGKILL sent to the
    worker's group leaves the job running, unsupervised, its output still
    going to the worker's. Linux only; elsewhere nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        log.warning(
            "job process: cannot follow its worker: errno %d", ctypes.get_errno()
        )
    elif worker_pid is not None and os.getppid() != worker_pid:
        # The worker died before the request took effect.
        os._exit(1)


@contextmanager
def _measured(current: Runtime, kind: str) -> Iterator[None]:
    """Count the job's remote calls whatever happens, and its success."""
    before = current.counter.by_route()
    keys = Keys(current.settings.redis_prefix)
    redis = _redis(current)
    try:
        yield
    finally:
        made = metrics.calls_since(before, current.counter.by_route())
        metrics.count_calls(redis, keys, made)
    metrics.count_job(redis, keys, kind, "ok")


def _job_id() -> str:
    job = get_current_job()
    return job.id if job is not None else "-"


def upsert_tenant(tenant_id: str) -> dict[str, Any]:
    """Bring one tenant's client in step; raise SyncError so RQ can retry."""
    current = runtime()
    redis = _redis(current)
    keys = Keys(current.settings.redis_prefix)
    job_id = _job_id()
    # Cleared before the work, so an event during it queues one more run.
    clear_pending(redis, keys, tenant_id, job_id)
    with _measured(current, UPSERT), tenant_lock(redis, keys, tenant_id):
        outcome = _upsert(current, tenant_id, job_id)
    tally(redis, get_current_job(), outcome.result)
    return outcome.to_dict()


@contextmanager
def tenant_lock(redis: Redis, keys: Keys, tenant_id: str) -> Iterator[None]:
    """Hold the tenant's lock for the block, renewed while it runs.

    Raises TenantBusy, a retryable error, when another job holds the lock
    for longer than LOCK_WAIT seconds.
    """
    # Not thread-local: the renewing thread must see the lock's token.
    lock = redis.lock(
        keys.tenant_lock(tenant_id),
        timeout=LOCK_TTL,
        blocking_timeout=LOCK_WAIT,
        thread_local=False,
    )
    if not lock.acquire():
        raise TenantBusy("another job is syncing it", tenant_id=tenant_id)
    done = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, done, tenant_id), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        _release(lock, tenant_id)


def _renew(lock: Lock, done: threading.Event, tenant_id: str) -> None:
    while not done.wait(LOCK_RENEW):
        try:
            lock.reacquire()
        except LockError:
            log.warning("tenant %s: lost its lock while syncing", tenant_id)
            return
        except RedisError as exc:
            # The lock outlives two missed renewals; try again on the next.
            log.warning("tenant %s: could not renew its lock: %s", tenant_id, exc)


def _release(lock: Lock, tenant_id: str) -> None:
    try:
        lock.release()
    except (LockError, RedisError) as exc:
        # It expires by itself within LOCK_TTL; the job's own outcome matters more.
        log.warning("tenant %s: could not release its lock: %s", tenant_id, exc)


def _upsert(current: Runtime, tenant_id: str, job_id: str) -> Outcome:
    try:
        outcome = current.engine().upsert_tenant(tenant_id)
    except SyncError as exc:
        _mark_failed(current, tenant_id, str(exc))
        raise
    log.info("tenant %s: job %s: %s", tenant_id, job_id, outcome.result)
    return outcome


def _mark_failed(current: Runtime, tenant_id: str, reason: str) -> None:
    link = current.links.get(tenant_id)
    if link is not None:
        current.links.claim(link.with_outcome("failed", reason))


def reconcile(dry_run: bool = False) -> dict[str, Any]:
    """Plan every tenant and enqueue an upsert for each that needs a write.

    A dry run enqueues nothing and returns the dry-run summary.
    """
    current = runtime()
    if dry_run:
        with _measured(current, RECONCILE):
            summary = current.engine().reconcile(dry_run=True)
        return summary.to_dict()
    with _measured(current, RECONCILE):
        result = _fan_out(current)
    _record_run(current, result)
    return result


def _fan_out(current: Runtime) -> dict[str, Any]:
    redis = _redis(current)
    engine = current.engine()
    summary = RunSummary()
    started = datetime.now(UTC)
    plans = engine.plan()
    queued: list[str] = []
    source = run_source(_job_id())
    for plan in plans:
        if engine.has_work(plan):
            queued.append(
                enqueue_upsert(redis, current.settings, plan.tenant_id, source=source)
            )
        else:
            summary.add(Outcome.from_plan(plan))
    summary.planned = len(plans)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    summary.finish(current.counter.by_method(), elapsed)
    result = summary.to_dict()
    result["queued"] = len(queued)
    log.info("reconcile planned %d tenants, queued %d", len(plans), len(queued))
    return result


def _record_run(current: Runtime, result: dict[str, Any]) -> None:
    redis = _redis(current)
    keys = Keys(current.settings.redis_prefix)
    current.links.save_run(result)
    brief = {
        name: result.get(name)
        for name in ("started_at", "created", "updated", "unchanged", "skipped")
    }
    brief.update(
        failed=result.get("failed"), queued=result.get("queued"), run_id=_job_id()
    )
    with redis.pipeline() as pipe:
        pipe.lpush(keys.run_history, json.dumps(brief))
        pipe.ltrim(keys.run_history, 0, HISTORY_LENGTH - 1)
        pipe.execute()
    metrics.mark_reconcile(redis, keys)


def run_history(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """The latest reconciles in brief, newest first, with their upserts' outcomes.

    A run's own counts are the tenants it settled while planning; the upserts
    it queued add theirs as they end (created, updated, failed, ...).
    """
    runs = [json.loads(item) for item in redis.lrange(keys.run_history, 0, -1)]
    with redis.pipeline() as pipe:
        for run in runs:
            pipe.hgetall(keys.run_tally(str(run.get("run_id", ""))))
        tallies = pipe.execute()
    for run, counts in zip(runs, tallies, strict=True):
        for outcome, count in counts.items():
            name = _text(outcome)
            run[name] = int(run.get(name) or 0) + int(count)
    return runs


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def poll_changes() -> dict[str, Any]:
    """Enqueue an upsert for each customer tenant changed since the last poll.

    The first poll only stores the feed's timestamp: the full reconcile covers
    what changed before it.
    """
    current = runtime()
    redis = _redis(current)
    keys = Keys(current.settings.redis_prefix)
    with _measured(current, POLL):
        stored = redis.get(keys.poll_cursor)
        since = parse_timestamp(_text(stored)) if stored else datetime.now(UTC)
        feed = current.acronis.list_tenants(updated_since=since)
        queued = []
        if stored is not None:
            queued = [
                enqueue_upsert(redis, current.settings, tenant["id"], source="poll")
                for tenant in feed.tenants
                if is_customer(tenant)
            ]
        redis.set(keys.poll_cursor, rfc3339_utc(feed.timestamp))
    log.info("poll since %s queued %d upserts", rfc3339_utc(since), len(queued))
    return {"since": rfc3339_utc(since), "queued": len(queued), "first": not stored}
