"""Counters kept in Redis, so the web, the workers and the scheduler share them.

Each family is one Redis hash under the install's prefix; a field is a label
set joined with ``|`` and its value the count. Workers add to them as jobs
end; :func:`collect` reads them at scrape time into a prometheus_client
registry, which the web renders at ``GET /metrics``.

Families:

- ``jobs``: ``kind|outcome`` -> jobs ended (outcome: ok, retried, failed)
- ``retries``: ``kind`` -> retries scheduled
- ``calls``: ``service|method|route|status`` -> remote calls made by jobs
- ``gauges``: ``last_reconcile_success`` -> Unix time of the last good reconcile
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from redis import Redis, RedisError
from rq import Queue
from rq.registry import FailedJobRegistry

from sync.keys import Keys
from sync.settings import Settings

log = logging.getLogger(__name__)

JOBS = "jobs"
RETRIES = "retries"
CALLS = "calls"
GAUGES = "gauges"
LAST_RECONCILE = "last_reconcile_success"
SEPARATOR = "|"


def count_job(redis: Redis, keys: Keys, kind: str, outcome: str) -> None:
    """Count one job that ended with ``outcome`` (ok, retried or failed)."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.metrics(JOBS), f"{kind}{SEPARATOR}{outcome}", 1)
        if outcome == "retried":
            pipe.hincrby(keys.metrics(RETRIES), kind, 1)
        pipe.execute()


def count_calls(redis: Redis, keys: Keys, by_route: Mapping[str, int]) -> None:
    """Add a job's remote calls, keyed ``"service METHOD route status"``."""
    if not by_route:
        return
    with redis.pipeline(transaction=False) as pipe:
        for route, count in by_route.items():
            labels = SEPARATOR.join(_route_labels(route))
            pipe.hincrby(keys.metrics(CALLS), labels, count)
        pipe.execute()


def _route_labels(route: str) -> tuple[str, str, str, str]:
    service, method, rest = route.split(" ", 2)
    path, _, status = rest.rpartition(" ")
    return service, method, path, status


def calls_since(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """The calls counted in ``after`` but not yet in ``before``."""
    grown = {route: count - before.get(route, 0) for route, count in after.items()}
    return {route: count for route, count in grown.items() if count > 0}


def mark_reconcile(redis: Redis, keys: Keys, when: float | None = None) -> None:
    """Record that a reconcile finished without an error."""
    moment = time.time() if when is None else when
    redis.hset(keys.metrics(GAUGES), LAST_RECONCILE, str(moment))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SyncCollector(Collector):
    """Reads the shared counters and the queue's size from Redis at each scrape."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._keys = Keys(settings.redis_prefix)

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._read()
        except RedisError as exc:
            # A scrape must answer even when Redis does not; the gap shows.
            log.warning("metrics: Redis did not answer (%s)", type(exc).__name__)

    def _family(self, name: str) -> dict[str, float]:
        raw = self._redis.hgetall(self._keys.metrics(name))
        return {_text(key): float(value) for key, value in raw.items()}

    def _read(self) -> Iterator[Metric]:
        jobs = CounterMetricFamily(
            "sync_jobs",
            "Sync jobs ended, by kind and outcome",
            labels=["kind", "outcome"],
        )
        for labels, value in self._family(JOBS).items():
            jobs.add_metric(labels.split(SEPARATOR), value)
        yield jobs
        retries = CounterMetricFamily(
            "sync_job_retries",
            "Retries scheduled after a retryable error",
            labels=["kind"],
        )
        for kind, value in self._family(RETRIES).items():
            retries.add_metric([kind], value)
        yield retries
        yield self._calls()
        yield from self._gauges()

    def _calls(self) -> Metric:
        calls = CounterMetricFamily(
            "sync_remote_calls",
            "Calls made by jobs to Acronis and AlgaPSA",
            labels=["service", "method", "route", "status"],
        )
        for labels, value in self._family(CALLS).items():
            calls.add_metric(labels.split(SEPARATOR), value)
        return calls

    def _gauges(self) -> Iterator[Metric]:
        last = self._family(GAUGES).get(LAST_RECONCILE)
        if last is not None:
            yield GaugeMetricFamily(
                "sync_last_reconcile_success_timestamp_seconds",
                "When the last reconcile finished without an error",
                value=last,
            )
        queue = Queue(self._settings.queue_name, connection=self._redis)
        yield GaugeMetricFamily(
            "sync_queue_depth", "Jobs waiting in the sync queue", value=queue.count
        )
        failed = FailedJobRegistry(queue=queue)
        yield GaugeMetricFamily(
            "sync_failed_jobs", "Jobs in the failed registry", value=failed.count
        )


def collect(redis: Redis, settings: Settings) -> CollectorRegistry:
    """A registry holding only the shared sync metrics, for ``GET /metrics``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncCollector(redis, settings))
    return registry
