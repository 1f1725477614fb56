"""The receiver's Flask application, built by :func:`create_app`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

import redis
from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from sync.errors import ConfigError
from sync.saved_settings import SettingsStore
from sync.settings import DEFAULT_MAX_BODY_BYTES, Settings, SettingsWatcher
from web import api, docs, webhooks
from web.admin import register_admin
from web.dashboard import register_dashboard
from web.errors import ApiError, register_error_handlers
from web.service import EXTENSION, JobQueue, RqJobQueue, Service, Services, connect
from web.setup import register_setup
from web.setup_form import UNUSED_ACRONIS, UNUSED_ALGA

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    redis: redis.Redis | None = None,
    *,
    jobs: JobQueue | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """Build the receiver.

    Without ``settings`` they are loaded from ``environ`` (the process
    environment by default) over those the setup saved in ``DATA_DIR``, and
    loaded again when the saved ones change; while they are incomplete the
    app serves the setup at ``/setup``. ``redis`` defaults to a connection
    to ``REDIS_URL``, and ``jobs`` to the RQ queue on that Redis. Given
    ``settings`` are fixed, and there is no setup unless ``environ`` is given.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = DEFAULT_MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]

    def make(current: Settings) -> Service:
        connection = redis if redis is not None else connect(current)
        # Announced lengths are checked before the body is read; webhook
        # routes also bound a body sent without one (web.webhooks.bounded_body).
        app.config["MAX_CONTENT_LENGTH"] = current.max_body_bytes
        return Service(
            settings=current,
            redis=connection,
            jobs=jobs or RqJobQueue(connection, current),
        )

    store: SettingsStore | None = None
    if settings is not None:
        services = Services(make, fixed=make(settings))
    else:
        environ = os.environ if environ is None else environ
        services = _watched(make, environ)
    if environ is not None:
        store = SettingsStore.from_environ(environ)
    app.extensions[EXTENSION] = services
    app.before_request(_refuse_large_bodies)
    register_error_handlers(app)
    register_setup(app, store, environ or {})
    register_admin(app, redis)
    for blueprint in (webhooks.blueprint, api.blueprint, docs.blueprint):
        app.register_blueprint(blueprint)
    first = services.current()
    _mount_dashboard(app, first.settings if first else None, environ or {})
    _trust_proxies(app, os.environ if environ is None else environ)
    return app


def _mount_dashboard(
    app: Flask, current: Settings | None, environ: Mapping[str, str]
) -> None:
    """Mount ``/rq`` whenever a Redis URL is known, even before the setup.

    It must work right after the wizard saves, with no restart. Until then
    the dashboard gets the environment's settings, with stand-ins for the
    remote ones the setup has yet to supply.
    """
    if current is not None:
        register_dashboard(app, current, current.redis_url)
        return
    try:
        login = Settings.from_env({**environ, **UNUSED_ACRONIS, **UNUSED_ALGA})
    except ConfigError as exc:
        log.warning("the job dashboard at /rq is off until setup: %s", exc)
        return
    register_dashboard(app, login, environ.get("REDIS_URL", ""))


def _trust_proxies(app: Flask, environ: Mapping[str, str]) -> None:
    """Behind PROXY_HOPS proxies, take the client address from X-Forwarded-For.

    The login limit counts by address; behind nginx every request would come
    from nginx, and one attacker's wrong passwords would lock out every admin.
    Only set it when that many proxies really sit in front: a client that
    reaches the app directly could otherwise name any address.
    """
    hops = int(environ.get("PROXY_HOPS") or 0)
    if hops > 0:
        wrapped = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
        app.wsgi_app = wrapped  # type: ignore[method-assign]


def _watched(
    make: Callable[[Settings], Service], environ: Mapping[str, str]
) -> Services:
    """Services that follow the saved settings; setup mode while there are none."""
    watcher = SettingsWatcher(environ)
    try:
        watcher.current()
    except ConfigError as exc:
        if watcher.store.configured():
            raise  # saved, yet unusable: say so rather than reopen the setup
        log.warning("not configured yet (%s): the setup is at /setup", exc)
    return Services(make, watcher=watcher)


def _refuse_large_bodies() -> None:
    """Answer 413 from the announced length, before any body or signature work."""
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise ApiError(
            413,
            "too_large",
            f"the body is over {limit} bytes (WEBHOOK_MAX_BYTES)",
        )
