"""What the receiver's routes share: settings, Redis, the job queue, the links.

The routes never call a remote API to answer a webhook; they hand the work to
the job queue. :class:`JobQueue` is the small surface they need from it, so a
test can stand in a recording queue while production uses RQ through
``worker.queueing``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from flask import current_app

from sync.errors import ConfigError
from sync.keys import Keys
from sync.links import LinkStore, RedisLinkStore
from sync.runtime import Runtime, build_runtime
from sync.settings import Settings, SettingsWatcher
from web.errors import ApiError
from web.signatures import StandardWebhooks
from worker import queueing

log = logging.getLogger(__name__)

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


class Services:
    """The Service of the current settings, or None before the setup is done.

    With a watcher, the Service is built again whenever the saved settings
    change, so every gunicorn worker takes webhooks right after the setup
    and follows later changes without a restart.
    """

    def __init__(
        self,
        make: Callable[[Settings], Service],
        *,
        watcher: SettingsWatcher | None = None,
        fixed: Service | None = None,
    ) -> None:
        self._make = make
        self._watcher = watcher
        self._service = fixed
        self._lock = threading.Lock()

    def current(self) -> Service | None:
        if self._watcher is None:
            return self._service
        if self._service is not None and not self._watcher.changed():
            return self._service
        with self._lock:
            try:
                settings = self._watcher.current()
            except ConfigError as exc:
                log.debug("not configured: %s", exc)
                self._service = None
                return None
            if self._service is None or self._service.settings is not settings:
                self._service = self._make(settings)
            return self._service


def services() -> Services:
    """The services of the application handling the current request."""
    found: Services = current_app.extensions[EXTENSION]
    return found


def service() -> Service:
    """The service of the current request; 503 ``not_configured`` before setup."""
    found = services().current()
    if found is None:
        raise ApiError(
            503,
            "not_configured",
            "the service is not set up yet: open /setup in a browser",
        )
    return found
