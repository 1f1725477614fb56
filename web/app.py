"""The receiver's Flask application, built by :func:`create_app`."""

from __future__ import annotations

import logging
import os

import redis
from flask import Flask, request

from sync.settings import Settings
from web import api, docs, webhooks
from web.dashboard import register_dashboard
from web.errors import ApiError, register_error_handlers
from web.service import EXTENSION, JobQueue, RqJobQueue, Service, connect

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    redis: redis.Redis | None = None,
    *,
    jobs: JobQueue | None = None,
) -> Flask:
    """Build the receiver.

    ``settings`` default to the process environment, ``redis`` to a
    connection to ``REDIS_URL``, and ``jobs`` to the RQ queue on that Redis.
    """
    settings = settings or Settings.from_env(os.environ)
    connection = redis if redis is not None else connect(settings)
    app = Flask(__name__)
    # Flask enforces this while reading a body whose size was not announced.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = Service(
        settings=settings,
        redis=connection,
        jobs=jobs or RqJobQueue(connection, settings),
    )
    app.before_request(_refuse_large_bodies)
    register_error_handlers(app)
    for blueprint in (webhooks.blueprint, api.blueprint, docs.blueprint):
        app.register_blueprint(blueprint)
    register_dashboard(app, settings, settings.redis_url)
    return app


def _refuse_large_bodies() -> None:
    """Answer 413 from the announced length, before any body or signature work."""
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise ApiError(
            413,
            "too_large",
            f"the body is over {limit} bytes (WEBHOOK_MAX_BYTES)",
        )
