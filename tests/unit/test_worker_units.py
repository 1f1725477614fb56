"""Quick checks of job ids, slot claims, the burst guard and metrics (fakeredis)."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue
from rq.exceptions import AbandonedJobError
from rq.job import Job, JobStatus

from sync.errors import LinkConflict, RemoteUnavailable, RetryableError
from sync.keys import Keys
from sync.settings import Settings
from worker import jobs, metrics
from worker.jobs import TenantBusy
from worker.queueing import (
    PENDING_TTL,
    clear_pending,
    enqueue_reconcile,
    enqueue_upsert,
    job_id_for,
    queue_depth,
    stop_unless_retryable,
    sync_queue,
)
from worker.scheduler import CronSlots, claim_slot, poll_slot

TENANT = "3f2b6a40-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "ACRONIS_BASE_URL": "http://127.0.0.1:9/api/2",
            "ACRONIS_CLIENT_ID": "id",
            "ACRONIS_CLIENT_SECRET": "secret",
            "ACRONIS_TENANT_ID": TENANT,
            "ALGA_BASE_URL": "http://127.0.0.1:9/api/v1",
            "ALGA_API_TOKEN": "token",
            "SYNC_QUEUE": "unit",
            "SYNC_RETRY_DELAYS": "5 30",
        }
    )


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_job_ids_keep_a_uuid_and_hash_anything_else():
    assert job_id_for("upsert", TENANT) == f"upsert-{TENANT}"
    hashed = job_id_for("upsert", "a key:with spaces/and slashes")
    assert hashed.startswith("upsert-") and len(hashed) == len("upsert-") + 32
    assert hashed == job_id_for("upsert", "a key:with spaces/and slashes")


def test_enqueue_upsert_refuses_an_id_that_is_not_a_uuid(redis, settings):
    with pytest.raises(ValueError, match="not a tenant id"):
        enqueue_upsert(redis, settings, "../etc", source="test")


def test_enqueue_upsert_refuses_a_uuid_with_a_trailing_newline(redis, settings):
    with pytest.raises(ValueError, match="not a tenant id"):
        enqueue_upsert(redis, settings, TENANT + "\n", source="test")

    assert queue_depth(redis, settings) == 0


def test_a_failed_enqueue_leaves_no_marker_behind(redis, settings, monkeypatch):
    def refuse(*args: object, **kwargs: object) -> None:
        raise RedisConnectionError("connection reset")

    keys = Keys(settings.redis_prefix)
    with monkeypatch.context() as patched:
        patched.setattr(Queue, "enqueue", refuse)
        with pytest.raises(RedisConnectionError):
            enqueue_upsert(redis, settings, TENANT, source="test")

    assert redis.get(keys.pending_upsert(TENANT)) is None
    later = enqueue_upsert(redis, settings, TENANT, source="test")
    assert later == f"upsert-{TENANT}-2"
    assert queue_depth(redis, settings) == 1


def test_a_burst_queues_one_job_until_it_starts(redis, settings):
    first = enqueue_upsert(redis, settings, TENANT, source="test")
    again = enqueue_upsert(redis, settings, TENANT, source="test")

    assert again == first == f"upsert-{TENANT}-1"
    assert queue_depth(redis, settings) == 1
    assert clear_pending(redis, Keys(settings.redis_prefix), TENANT, first)
    later = enqueue_upsert(redis, settings, TENANT, source="test")
    assert later == f"upsert-{TENANT}-2"
    assert queue_depth(redis, settings) == 2


def test_a_stale_job_does_not_clear_a_newer_marker(redis, settings):
    keys = Keys(settings.redis_prefix)
    current = enqueue_upsert(redis, settings, TENANT, source="test")

    assert not clear_pending(redis, keys, TENANT, f"upsert-{TENANT}-0")
    assert redis.get(keys.pending_upsert(TENANT)) == current.encode()


def test_a_second_sync_now_gets_the_reconcile_already_queued(redis, settings):
    first = enqueue_reconcile(redis, settings, dry_run=False, source="admin")
    again = enqueue_reconcile(redis, settings, dry_run=False, source="api")
    dry = enqueue_reconcile(redis, settings, dry_run=True, source="admin")

    assert again == first and dry != first
    assert enqueue_reconcile(redis, settings, dry_run=True, source="api") == dry
    assert queue_depth(redis, settings) == 2
    Job.fetch(first, connection=redis).set_status(JobStatus.STARTED)
    assert enqueue_reconcile(redis, settings, dry_run=False, source="api") == first


def test_a_finished_reconcile_lets_the_next_one_queue(redis, settings):
    first = enqueue_reconcile(redis, settings, dry_run=False, source="admin")
    Job.fetch(first, connection=redis).set_status(JobStatus.FINISHED)

    later = enqueue_reconcile(redis, settings, dry_run=False, source="admin")

    assert later != first
    assert redis.get(Keys(settings.redis_prefix).pending_reconcile("write")) == (
        later.encode()
    )


def test_a_lost_reconcile_holds_its_marker_only_while_being_queued(redis, settings):
    marker = Keys(settings.redis_prefix).pending_reconcile("write")
    redis.set(marker, "reconcile-being-queued", ex=PENDING_TTL)

    assert enqueue_reconcile(redis, settings, dry_run=False, source="admin") == (
        "reconcile-being-queued"
    )
    redis.set(marker, "reconcile-deleted", ex=PENDING_TTL - 60)
    fresh = enqueue_reconcile(redis, settings, dry_run=False, source="admin")
    assert fresh != "reconcile-deleted"
    assert queue_depth(redis, settings) == 1


def test_scheduled_reconciles_are_not_held_back(redis, settings):
    enqueue_reconcile(redis, settings, dry_run=False, source="admin")

    slot = enqueue_reconcile(
        redis, settings, dry_run=False, source="schedule", job_id="reconcile-slot-1"
    )

    assert slot == "reconcile-slot-1"
    assert queue_depth(redis, settings) == 2


def test_jobs_carry_ids_and_retries_but_no_settings(redis, settings):
    enqueue_upsert(redis, settings, TENANT, source="webhook")
    (job,) = sync_queue(redis, settings).jobs

    assert job.args == (TENANT,)
    assert job.retries_left == 2 and job.retry_intervals == [5, 30]
    assert job.meta["kind"] == "upsert" and job.meta["source"] == "webhook"
    assert "secret" not in repr(job.meta) and "token" not in repr(job.meta)


@pytest.mark.parametrize(
    ("error", "retries_left"),
    [
        (RemoteUnavailable("AlgaPSA answered 503"), 2),
        (AbandonedJobError(), 2),
        (LinkConflict("client taken"), 0),
        (KeyError("bug"), 0),
    ],
)
def test_only_retryable_errors_keep_their_retries(redis, settings, error, retries_left):
    enqueue_upsert(redis, settings, TENANT, source="test")
    (job,) = sync_queue(redis, settings).jobs

    stop_unless_retryable(job, redis, type(error), error, None)

    assert job.retries_left == retries_left
    outcome = "retried" if retries_left else "failed"
    counts = redis.hgetall(Keys(settings.redis_prefix).metrics(metrics.JOBS))
    assert counts == {f"upsert|{outcome}".encode(): b"1"}


def test_a_slot_is_claimed_once(redis):
    keys = Keys("unit")
    assert claim_slot(redis, keys, "reconcile", 1_700_000_000) == "reconcile-1700000000"
    assert claim_slot(redis, keys, "reconcile", 1_700_000_000) is None
    assert claim_slot(redis, keys, "reconcile", 1_700_000_002) is not None


def test_cron_slots_start_after_creation_and_skip_overtaken_ones():
    slots = CronSlots("* * * * * */2", ZoneInfo("UTC"), now=1_700_000_000.5)

    assert slots.next == 1_700_000_002
    assert slots.due(1_700_000_001.9) is None
    assert slots.due(1_700_000_007.0) == 1_700_000_002
    assert slots.due(1_700_000_007.5) is None
    assert slots.next == 1_700_000_008


def test_cron_slots_follow_the_time_zone():
    # 2023-11-14 22:13:20 UTC; midnight in Berlin (UTC+1) is 23:00 UTC.
    slots = CronSlots("0 0 * * *", ZoneInfo("Europe/Berlin"), now=1_700_000_000)
    assert slots.next == 1_700_002_800


def test_poll_slots_are_aligned_on_the_epoch():
    assert poll_slot(1_700_000_123.4, 300) == 1_700_000_100


def test_collect_reads_the_shared_counters(redis, settings):
    keys = Keys(settings.redis_prefix)
    metrics.count_job(redis, keys, "upsert", "ok")
    metrics.count_calls(redis, keys, {"alga POST /clients 201": 2})
    metrics.mark_reconcile(redis, keys, when=1_700_000_000)

    registry = metrics.collect(redis, settings)

    assert (
        registry.get_sample_value(
            "sync_jobs_total", {"kind": "upsert", "outcome": "ok"}
        )
        == 1
    )
    labels = {"service": "alga", "method": "POST", "route": "/clients", "status": "201"}
    assert registry.get_sample_value("sync_remote_calls_total", labels) == 2
    assert (
        registry.get_sample_value("sync_last_reconcile_success_timestamp_seconds")
        == 1_700_000_000
    )
    assert registry.get_sample_value("sync_queue_depth") == 0


def test_calls_since_keeps_only_what_grew():
    before = {"alga GET /clients 200": 3}
    after = {"alga GET /clients 200": 5, "acronis GET /tenants 200": 1}
    assert metrics.calls_since(before, after) == {
        "alga GET /clients 200": 2,
        "acronis GET /tenants 200": 1,
    }


def test_a_locked_tenant_gives_the_job_back_within_a_second(redis):
    keys = Keys("unit")
    redis.set(keys.tenant_lock(TENANT), "a dead job's token", ex=60)
    started = time.monotonic()

    with pytest.raises(TenantBusy), jobs.tenant_lock(redis, keys, TENANT):
        pytest.fail("the block ran without the lock")

    assert time.monotonic() - started < jobs.LOCK_WAIT + 0.5
    assert isinstance(TenantBusy("busy"), RetryableError)


def test_the_tenant_lock_is_short_lived_but_renewed_while_held(redis, monkeypatch):
    monkeypatch.setattr(jobs, "LOCK_TTL", 1)
    monkeypatch.setattr(jobs, "LOCK_RENEW", 0.2)
    key = Keys("unit").tenant_lock(TENANT)

    with jobs.tenant_lock(redis, Keys("unit"), TENANT):
        assert 0 < redis.pttl(key) <= 1000
        time.sleep(1.6)
        assert redis.exists(key)

    assert not redis.exists(key)
