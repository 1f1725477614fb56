"""The admin dashboard: ``/login``, ``/logout`` and the pages under ``/admin``.

=====================  ==============================================
``/admin``             last runs, next run, queue, failures, a chart
``/admin/links``       every link, searchable; sync, show change, unlink
``/admin/actions``     sync now, dry run, requeue failed jobs
``/admin/mapping``     the mapping's rules and a one-tenant preview
``/admin/onboarding``  tenants the next sync would create; link-only
``/admin/settings``    each setting and its source; reset the setup
=====================  ==============================================

Pages are rendered on the server; every form carries a CSRF token and every
page asks for the admin session (:mod:`web.admin_auth`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis
from croniter import croniter
from flask import Flask, render_template
from rq.registry import FailedJobRegistry

from sync.settings import Settings
from web import admin_actions, admin_links, admin_onboarding
from web.admin_auth import blueprint as login_blueprint
from web.admin_auth import limit_logins
from web.admin_base import blueprint, current
from web.admin_chart import run_chart
from web.setup import ENVIRON
from worker.jobs import run_history
from worker.queueing import sync_queue

log = logging.getLogger(__name__)

SHOWN_RUNS = 20

for _page in (admin_links, admin_actions, admin_onboarding):
    blueprint.register_blueprint(_page.blueprint)


def register_admin(app: Flask, connection: redis.Redis | None = None) -> None:
    """Add the login and the admin pages to ``app``.

    ``connection`` is the app's own Redis, if it was given one; login
    attempts are counted there, else at ``REDIS_URL``.
    """
    app.register_blueprint(login_blueprint)
    app.register_blueprint(blueprint)
    limit_logins(app, connection, dict(app.extensions.get(ENVIRON, {})))


def next_run(settings: Settings, now: datetime | None = None) -> datetime | None:
    """When ``SYNC_CRON`` fires next in ``SYNC_TIMEZONE``; None when it is off."""
    if not settings.sync_cron:
        return None
    zone = ZoneInfo(settings.sync_timezone)
    start = (now or datetime.now(zone)).astimezone(zone)
    found: datetime = croniter(settings.sync_cron, start).get_next(datetime)
    return found


def _failed_count() -> int:
    service = current()
    queue = sync_queue(service.redis, service.settings)
    return FailedJobRegistry(queue=queue).count


@blueprint.get("")
def overview() -> str:
    """The last runs, what comes next, and how the queue stands."""
    service = current()
    runs: list[dict[str, Any]] = run_history(service.redis, service.keys)[:SHOWN_RUNS]
    return render_template(
        "admin/overview.html",
        runs=runs,
        chart=run_chart(list(reversed(runs))),
        next_run=next_run(service.settings),
        settings=service.settings,
        depth=service.jobs.depth(),
        failed=_failed_count(),
    )
