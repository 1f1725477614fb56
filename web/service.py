"""What the receiver's routes share: settings, Redis, the job queue, the links.

The routes never call a remote API to answer a webhook; they hand the work to
the job queue. :class:`JobQueue` is the small surface they need from it, so a
test can stand in a recording queue while production uses RQ through
``worker.queueing``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from flask import current_app

from sync.keys import Keys
from sync.links import LinkStore, RedisLinkStore
from sync.runtime import Runtime, build_runtime
from sync.settings import Settings
from web.signatures import StandardWebhooks
from worker import queueing

EXTENSION = "alga_acronis_sync"

# Short socket timeouts so that a Redis outage turns into a quick 503.
REDIS_CONNECT_TIMEOUT = 1.0
REDIS_SOCKET_TIMEOUT = 3.0


class JobQueue(Protocol):
    """Where the receiver puts work for the workers."""

    def enqueue_upsert(self, tenant_id: str, *, source: str) -> str:
        """Queue one tenant's upsert; return the job id. ValueError: not a UUID."""

    def enqueue_reconcile(self, *, dry_run: bool, source: str) -> str:
        """Queue a full reconcile; return the job id."""

    def report(self, job_id: str) -> dict[str, Any] | None:
        """The state and result of a job, or None when it is unknown."""

    def depth(self) -> int:
        """How many jobs wait in the queue."""


class RqJobQueue:
    """The job queue of ``worker.queueing``, on RQ and Redis."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self._redis = connection
        self._settings = settings

    def enqueue_upsert(self, tenant_id: str, *, source: str) -> str:
        return queueing.enqueue_upsert(
            self._redis, self._settings, tenant_id, source=source
        )

    def enqueue_reconcile(self, *, dry_run: bool, source: str) -> str:
        return queueing.enqueue_reconcile(
            self._redis, self._settings, dry_run=dry_run, source=source
        )

    def report(self, job_id: str) -> dict[str, Any] | None:
        return queueing.job_report(self._redis, self._settings, job_id)

    def depth(self) -> int:
        return queueing.queue_depth(self._redis, self._settings)


def connect(settings: Settings) -> redis.Redis:
    """A Redis client that fails fast; it reconnects by itself once Redis is back."""
    return redis.Redis.from_url(
        settings.redis_url or "redis://127.0.0.1:6379/0",
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        health_check_interval=30,
    )


@dataclass
class Service:
    """Everything a request may need, built once per process."""

    settings: Settings
    redis: redis.Redis
    jobs: JobQueue
    keys: Keys = field(init=False)
    links: LinkStore = field(init=False)
    standard: StandardWebhooks = field(init=False)
    _runtime: Runtime | None = field(default=None, init=False, repr=False)
    _runtime_lock: threading.RLock = field(
        default_factory=threading.RLock, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.redis_prefix)
        self.links = RedisLinkStore(self.redis, self.keys)
        self.standard = StandardWebhooks(self.settings.webhook_secret_list)

    def runtime(self) -> Runtime:
        """The engine's runtime, built on first use (it reads mapping.yaml)."""
        with self._runtime_lock:
            if self._runtime is None:
                self._runtime = build_runtime(self.settings)
            return self._runtime

    @property
    def runtime_lock(self) -> threading.RLock:
        """Held while the runtime's clients are in use: they are not shared."""
        return self._runtime_lock


def service() -> Service:
    """The service of the application handling the current request."""
    found: Service = current_app.extensions[EXTENSION]
    return found
