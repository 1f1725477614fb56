"""Put sync work on the RQ queue, read it back, and decide what is retried.

Job arguments are only tenant ids and flags, never settings or secrets: the
dashboard shows them. Every job carries in its ``meta`` its kind, its source
and the Redis key prefix, so a failure callback can count it without settings.

Retries: every job is enqueued with ``Retry(max=len(delays), interval=delays)``
from ``SYNC_RETRY_DELAYS``. :func:`stop_unless_retryable`, the failure callback
of every job, sets the job's retries to zero when the error is permanent (a
:class:`~sync.errors.PermanentError`, or any error that is not retryable), so
RQ moves it straight to the failed registry. A timeout and an abandoned job (a
worker that died) keep their retries: the next attempt may well succeed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from redis import Redis, RedisError
from rq import Callback, Queue, Retry
from rq.exceptions import AbandonedJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.timeouts import JobTimeoutException

from sync.errors import RetryableError
from sync.keys import Keys
from sync.settings import UUID_PATTERN, Settings
from worker import metrics

log = logging.getLogger(__name__)

# A queued upsert older than this no longer holds back a new one; a second
# job for the tenant then only costs a read.
PENDING_TTL = 3600
# How long a reconcile marker may name a job not yet written to Redis.
ENQUEUE_GRACE = 30
# A reconcile in these states is the one a second request gets back; a failed
# run waiting for its retry is scheduled.
ACTIVE_STATES = frozenset(
    {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
)
RESULT_TTL = 24 * 3600
FAILURE_TTL = 30 * 24 * 3600
CALLBACK_TIMEOUT = 30
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")

UPSERT = "upsert"
RECONCILE = "reconcile"
POLL = "poll"

# Delete the pending marker only while it still names this job.
_CLEAR_PENDING = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def job_id_for(kind: str, key: str) -> str:
    """An RQ-safe id: a UUID (or other safe key) is kept, anything else hashed."""
    if not SAFE_ID.match(key) or len(key) > 64:
        key = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{kind}-{key}"


def sync_queue(redis: Redis, settings: Settings) -> Queue:
    """The queue every sync job goes through."""
    return Queue(
        settings.queue_name,
        connection=redis,
        default_timeout=settings.job_timeout,
    )


def _options(settings: Settings, kind: str, source: str) -> dict[str, Any]:
    delays = settings.retry_delay_list
    return {
        "retry": Retry(max=len(delays), interval=delays),
        "on_failure": Callback(stop_unless_retryable, timeout=CALLBACK_TIMEOUT),
        "job_timeout": settings.job_timeout,
        "result_ttl": RESULT_TTL,
        "failure_ttl": FAILURE_TTL,
        "meta": {"kind": kind, "source": source, "prefix": settings.redis_prefix},
        "description": f"{kind} ({source})",
    }


def enqueue_upsert(
    redis: Redis, settings: Settings, tenant_id: str, *, source: str
) -> str:
    """Enqueue one tenant's upsert unless one is already queued; return its id.

    A burst of events for one tenant yields at most one queued job besides the
    running one: a pending marker (SET NX) holds the queued job's id until the
    job starts. Raises ValueError when ``tenant_id`` is not a UUID.
    """
    if not UUID_PATTERN.fullmatch(tenant_id):
        raise ValueError(f"{tenant_id!r} is not a tenant id (a UUID)")
    keys = Keys(settings.redis_prefix)
    marker = keys.pending_upsert(tenant_id)
    while True:
        queued = redis.get(marker)
        if queued is not None:
            return _text(queued)
        number = redis.hincrby(keys.upsert_sequence, tenant_id, 1)
        job_id = f"{job_id_for(UPSERT, tenant_id)}-{number}"
        if redis.set(marker, job_id, nx=True, ex=PENDING_TTL):
            break
    options = _options(settings, UPSERT, source)
    options["meta"]["tenant_id"] = tenant_id
    try:
        sync_queue(redis, settings).enqueue(
            "worker.jobs.upsert_tenant", tenant_id, job_id=job_id, **options
        )
    except BaseException:
        # A marker naming a job that was never queued would hold back every
        # event for the tenant until it expires.
        _forget_marker(redis, keys, tenant_id, job_id)
        raise
    log.debug("tenant %s: job %s enqueued (%s)", tenant_id, job_id, source)
    return job_id


def _forget_marker(redis: Redis, keys: Keys, tenant_id: str, job_id: str) -> None:
    try:
        clear_pending(redis, keys, tenant_id, job_id)
    except RedisError as exc:
        log.warning(
            "tenant %s: job %s was not queued and its marker stays for %d s: %s",
            tenant_id,
            job_id,
            PENDING_TTL,
            exc,
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def clear_pending(redis: Redis, keys: Keys, tenant_id: str, job_id: str) -> bool:
    """Let a later event enqueue a new upsert; ``job_id`` has started."""
    script = redis.register_script(_CLEAR_PENDING)
    return bool(script(keys=[keys.pending_upsert(tenant_id)], args=[job_id]))


def enqueue_reconcile(
    redis: Redis,
    settings: Settings,
    *,
    dry_run: bool,
    source: str,
    job_id: str | None = None,
) -> str:
    """Enqueue a full reconcile (fanned out by the worker); return the job id.

    A scheduled reconcile comes with the ``job_id`` of its claimed slot. Any
    other returns the reconcile of the same kind (dry run or not) that is
    still queued or running, if there is one, instead of queuing another.
    """
    marker = None
    if job_id is None:
        mode = "dry-run" if dry_run else "write"
        marker = Keys(settings.redis_prefix).pending_reconcile(mode)
        job_id, held = _claim_reconcile(redis, marker)
        if held:
            return job_id
    try:
        sync_queue(redis, settings).enqueue(
            "worker.jobs.reconcile",
            dry_run,
            job_id=job_id,
            **_options(settings, RECONCILE, source),
        )
    except BaseException:
        if marker is not None:
            redis.register_script(_CLEAR_PENDING)(keys=[marker], args=[job_id])
        raise
    return job_id


def _claim_reconcile(redis: Redis, marker: str) -> tuple[str, bool]:
    """The active reconcile's id and True, or a new id ``marker`` now holds."""
    while True:
        held = _active_reconcile(redis, marker)
        if held is not None:
            return held, True
        job_id = job_id_for(RECONCILE, uuid.uuid4().hex)
        if redis.set(marker, job_id, nx=True, ex=PENDING_TTL):
            return job_id, False


def _active_reconcile(redis: Redis, marker: str) -> str | None:
    """The reconcile ``marker`` names while it waits or runs; else free the marker."""
    held = redis.get(marker)
    if held is None:
        return None
    job_id = _text(held)
    try:
        status = Job.fetch(job_id, connection=redis).get_status()
    except NoSuchJobError:
        # A marker just set names a job another caller is queuing right now.
        if redis.ttl(marker) > PENDING_TTL - ENQUEUE_GRACE:
            return job_id
        status = None
    if status in ACTIVE_STATES:
        return job_id
    redis.register_script(_CLEAR_PENDING)(keys=[marker], args=[job_id])
    return None


def enqueue_poll(redis: Redis, settings: Settings, *, job_id: str) -> str:
    """Enqueue a poll of the Acronis change feed under ``job_id``."""
    job = sync_queue(redis, settings).enqueue(
        "worker.jobs.poll_changes",
        job_id=job_id,
        **_options(settings, POLL, "schedule"),
    )
    return job.id


RUN_SOURCE = "reconcile:"
TALLY_TTL = 7 * 24 * 3600


def run_source(run_id: str) -> str:
    """The ``source`` of upserts a reconcile queues, naming the run."""
    return f"{RUN_SOURCE}{run_id}"


def tally(connection: Redis, job: Job | None, outcome: str) -> None:
    """Count an upsert's final outcome on the run that queued it, if one did.

    A reconcile only queues its writes; the run's created, updated and failed
    counts come in as its upserts end, so the history shows what really
    happened.
    """
    if job is None:
        return
    source, prefix = job.meta.get("source"), job.meta.get("prefix")
    if not isinstance(source, str) or not source.startswith(RUN_SOURCE):
        return
    if not isinstance(prefix, str):
        return
    key = Keys(prefix).run_tally(source.removeprefix(RUN_SOURCE))
    with connection.pipeline() as pipe:
        pipe.hincrby(key, outcome, 1)
        pipe.expire(key, TALLY_TTL)
        pipe.execute()


def stop_unless_retryable(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """Failure callback: a permanent error skips the retries; count the failure."""
    if not _retryable(exc_value):
        job.retries_left = 0
    retrying = bool(job.retries_left and job.retries_left > 0)
    job.meta["reason"] = _reason(exc_value)
    job.save_meta()  # type: ignore[no-untyped-call]
    prefix = job.meta.get("prefix")
    if isinstance(prefix, str):
        kind = str(job.meta.get("kind", "unknown"))
        outcome = "retried" if retrying else "failed"
        metrics.count_job(connection, Keys(prefix), kind, outcome)
    if not retrying:
        tally(connection, job, "failed")
    log.warning(
        "job %s: %s (%s)",
        job.id,
        job.meta["reason"],
        "will be retried" if retrying else "failed for good",
    )


def _retryable(error: BaseException) -> bool:
    kinds = (RetryableError, JobTimeoutException, AbandonedJobError)
    return isinstance(error, kinds)


def _reason(error: BaseException) -> str:
    if isinstance(error, AbandonedJobError):
        return "the worker running this job stopped before it finished"
    if isinstance(error, JobTimeoutException):
        return "the job ran longer than SYNC_JOB_TIMEOUT and was stopped"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def job_report(redis: Redis, settings: Settings, job_id: str) -> dict[str, Any] | None:
    """What became of one job, or None when RQ no longer knows it."""
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None
    state = job.get_status(refresh=False)
    return {
        "id": job.id,
        "kind": job.meta.get("kind", "unknown"),
        "state": state.value if state is not None else "unknown",
        "enqueued_at": _iso(job.enqueued_at),
        "ended_at": _iso(job.ended_at),
        "result": job.return_value(refresh=False),
        "error": _error_of(job),
    }


def _error_of(job: Job) -> str | None:
    reason = job.meta.get("reason")
    if isinstance(reason, str):
        return reason
    latest = job.latest_result()
    if latest is not None and latest.exc_string:
        return latest.exc_string.strip().splitlines()[-1]
    return None


def queue_depth(redis: Redis, settings: Settings) -> int:
    """Jobs waiting to run (not counting those scheduled for a retry)."""
    return sync_queue(redis, settings).count


@dataclass(frozen=True)
class FailedJob:
    """A job in the failed registry, as ``python -m sync failed`` lists it."""

    id: str
    kind: str
    tenant_id: str
    reason: str
    ended_at: str


def failed_jobs(redis: Redis, settings: Settings) -> list[FailedJob]:
    """Every job in the failed registry, oldest failure first."""
    registry = FailedJobRegistry(queue=sync_queue(redis, settings))
    found: list[FailedJob] = []
    for job in Job.fetch_many(registry.get_job_ids(), connection=redis):
        if job is None:
            continue
        found.append(
            FailedJob(
                id=job.id,
                kind=str(job.meta.get("kind", "unknown")),
                tenant_id=str(job.meta.get("tenant_id", "")),
                reason=_error_of(job) or "no reason recorded",
                ended_at=_iso(job.ended_at) or "",
            )
        )
    return found


def requeue_failed(
    redis: Redis, settings: Settings, job_ids: list[str] | None = None
) -> list[str]:
    """Put failed jobs back on the queue (all when ``job_ids`` is None)."""
    registry = FailedJobRegistry(queue=sync_queue(redis, settings))
    wanted = registry.get_job_ids() if job_ids is None else job_ids
    done: list[str] = []
    for job_id in wanted:
        try:
            job = Job.fetch(job_id, connection=redis)
            job.meta.pop("reason", None)
            job.save_meta()  # type: ignore[no-untyped-call]
            registry.requeue(job)
        except (NoSuchJobError, InvalidJobOperation):
            log.warning("job %s: not requeued: it is not a failed job", job_id)
            continue
        done.append(job_id)
    return done


def drop_queue(redis: Redis, name: str) -> int:
    """Delete a queue, its registries and every job it knows; return keys deleted.

    For a queue used once and thrown away, such as a local demo's: RQ's keys
    name the queue or a job id as one of their ``:``-separated parts.
    """
    queue = Queue(name, connection=redis)
    registries = [
        queue.started_job_registry,
        queue.finished_job_registry,
        queue.failed_job_registry,
        queue.scheduled_job_registry,
        queue.deferred_job_registry,
        queue.canceled_job_registry,
    ]
    owned = {name, *queue.get_job_ids()}
    for registry in registries:
        owned.update(registry.get_job_ids(cleanup=False))
    doomed = [
        key
        for key in redis.scan_iter(match="rq:*", count=1000)
        if owned.intersection(_text(key).split(":"))
    ]
    redis.srem(Queue.redis_queues_keys, queue.key)
    return int(redis.unlink(*doomed)) if doomed else 0
