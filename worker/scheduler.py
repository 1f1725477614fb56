"""Enqueue the scheduled reconcile and the Acronis change poll, exactly once.

Run it as ``python -m worker.scheduler``; running two of them is safe.

Why not rq-scheduler or ``rq cron``: neither guarantees one run per slot on
its own. ``rq cron`` has no lock between processes, so two of them enqueue
every slot twice, and it fires interval jobs on every start; rq-scheduler
holds a short lock that a slow cycle lets expire, after which a second
instance enqueues again. Both hide the one decision that matters.

So the design is plain: croniter names the slots of ``SYNC_CRON`` in
``SYNC_TIMEZONE`` (UTC by default; a sixth field gives seconds). When a slot
comes due, each scheduler tries to claim it with a Redis ``SET NX EX`` on a
key named after the slot's Unix time; only the one that wins enqueues the
reconcile, under the job id ``reconcile-<slot epoch>``. Two schedulers, or a
scheduler restarted within a slot, therefore make one job per slot. A
scheduler only looks at slots after its own start, so a restart never fires
an extra run, and slots missed while no scheduler ran (or Redis was down)
are not caught up: the next slot's full reconcile covers them.

``ACRONIS_POLL_SECONDS`` (0 turns it off) cuts time into slots of that many
seconds from the Unix epoch, claimed the same way, each enqueuing one
``poll_changes`` job under ``poll-<slot epoch>``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from zoneinfo import ZoneInfo

from croniter import croniter
from redis import Redis, RedisError

from sync.errors import ConfigError
from sync.keys import Keys
from sync.settings import Settings, SettingsWatcher
from worker.queueing import POLL, RECONCILE, enqueue_poll, enqueue_reconcile

log = logging.getLogger(__name__)

TICK_SECONDS = 0.2
# A claim only has to outlive the moment its slot is due in every scheduler.
CLAIM_TTL = 3600
REDIS_RETRY_SECONDS = 2.0


def claim_slot(redis: Redis, keys: Keys, kind: str, slot: int) -> str | None:
    """Claim one slot for this process; the job id to enqueue, or None if taken."""
    job_id = f"{kind}-{slot}"
    won = redis.set(keys.schedule_claim(kind, slot), job_id, nx=True, ex=CLAIM_TTL)
    return job_id if won else None


@dataclass
class CronSlots:
    """The due slots of one cron expression, from the moment it is created on."""

    expression: str
    zone: ZoneInfo
    now: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        start = datetime.fromtimestamp(self.now, self.zone)
        self._slots = croniter(self.expression, start)
        self.next = int(self._slots.get_next(float))

    def due(self, now: float) -> int | None:
        """The slot due at ``now``, once; slots overtaken meanwhile are dropped."""
        if now < self.next:
            return None
        slot = self.next
        while self.next <= now:
            self.next = int(self._slots.get_next(float))
        return slot


def poll_slot(now: float, seconds: int) -> int:
    """The start of the poll slot ``now`` falls in."""
    return int(now // seconds) * seconds


class Scheduler:
    """Claims due slots and enqueues their jobs until :meth:`stop`."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.redis_prefix)
        self.cron = (
            CronSlots(settings.sync_cron, ZoneInfo(settings.sync_timezone))
            if settings.sync_cron
            else None
        )
        self._polled: int | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Tick until stopped; a Redis outage only delays the ticks."""
        log.info(
            "scheduler: cron %r in %s, poll every %d s",
            self.settings.sync_cron or "off",
            self.settings.sync_timezone,
            self.settings.poll_seconds,
        )
        while not self._stopping.is_set():
            try:
                self.tick(time.time())
            except RedisError as exc:
                log.warning("scheduler: Redis did not answer (%s)", exc)
                self._stopping.wait(REDIS_RETRY_SECONDS)
                continue
            self._stopping.wait(TICK_SECONDS)

    def tick(self, now: float) -> list[str]:
        """Enqueue whatever is due at ``now``; the ids of the jobs enqueued."""
        enqueued: list[str] = []
        slot = self.cron.due(now) if self.cron is not None else None
        if slot is not None:
            job_id = claim_slot(self.redis, self.keys, RECONCILE, slot)
            if job_id is not None:
                enqueue_reconcile(
                    self.redis,
                    self.settings,
                    dry_run=self.settings.dry_run,
                    source="schedule",
                    job_id=job_id,
                )
                enqueued.append(job_id)
        enqueued += self._poll(now)
        for job_id in enqueued:
            log.info("scheduler: enqueued %s", job_id)
        return enqueued

    def _poll(self, now: float) -> list[str]:
        if self.settings.poll_seconds <= 0:
            return []
        slot = poll_slot(now, self.settings.poll_seconds)
        if slot == self._polled:
            return []
        self._polled = slot
        job_id = claim_slot(self.redis, self.keys, POLL, slot)
        if job_id is None:
            return []
        return [enqueue_poll(self.redis, self.settings, job_id=job_id)]


SETUP_WAIT_SECONDS = 5.0


def wait_for_settings(watcher: SettingsWatcher, stopping: threading.Event) -> bool:
    """Wait until the settings are complete (the setup may not be done yet).

    False when stopped first.
    """
    told = False
    while not stopping.is_set():
        try:
            watcher.current()
            return True
        except ConfigError as exc:
            if not told:
                log.warning("scheduler: waiting for the setup at /setup: %s", exc)
                told = True
        stopping.wait(SETUP_WAIT_SECONDS)
    return False


def _stop_on_change(
    watcher: SettingsWatcher, scheduler: Scheduler, stopping: threading.Event
) -> None:
    while not stopping.wait(SETUP_WAIT_SECONDS):
        if watcher.changed():
            log.info("scheduler: the saved settings changed; reading them again")
            scheduler.stop()
            return


def main() -> int:
    """Run the scheduler until SIGTERM, with settings from the environment over
    the setup's saved ones; it starts again with new ones when they change."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stopping = threading.Event()
    running: list[Scheduler] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for scheduler in running:
            scheduler.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watcher = SettingsWatcher(os.environ)
    while wait_for_settings(watcher, stopping):
        settings = watcher.current()
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        running[:] = [Scheduler(redis, settings)]
        threading.Thread(
            target=_stop_on_change,
            args=(watcher, running[0], stopping),
            daemon=True,
        ).start()
        running[0].run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
