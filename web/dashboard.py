"""rq-dashboard mounted under ``/rq``, reachable only by the admin.

The dashboard has no CSRF protection, requeues every failed job on a plain
GET and shows job arguments and tracebacks, so every path under the prefix,
its static files included, asks for HTTP Basic credentials first. The
credentials are ``ADMIN_USERNAME`` and ``ADMIN_PASSWORD``, compared in
constant time. Without ``ADMIN_PASSWORD`` the dashboard is not mounted at
all and its paths answer 404.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import rq_dashboard
from flask import Flask, Response, request
from rq_dashboard.web import setup_rq_connection

from sync.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "/rq"
REALM = "alga-acronis-sync admin"
# Milliseconds between the dashboard's own refreshes (its default is 2,500):
# each refresh reads every registry, so a slower pace spares Redis.
POLL_INTERVAL_MS = 5000


def register_dashboard(app: Flask, settings: Settings, redis_url: str) -> None:
    """Mount rq-dashboard on ``app`` under ``/rq``, behind the admin login.

    Does nothing (so ``/rq`` stays a 404) when no admin password is set.
    """
    if settings.admin_password is None or not _password(settings):
        log.info("ADMIN_PASSWORD is not set: the job dashboard at %s is off", PREFIX)
        return

    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    app.config["RQ_DASHBOARD_POLL_INTERVAL"] = POLL_INTERVAL_MS
    app.before_request(_guard(settings))
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    setup_rq_connection(app)


def _guard(settings: Settings) -> Callable[[], Response | None]:
    """A before-request hook that stops unauthenticated dashboard requests."""
    username = settings.admin_username.encode()
    password = _password(settings).encode()

    def check() -> Response | None:
        if not _under_prefix(request.path):
            return None
        if _authorized(username, password):
            return None
        return challenge()

    return check


def _under_prefix(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _authorized(username: bytes, password: bytes) -> bool:
    """Whether the request carries exactly the admin's Basic credentials."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False

    given_user = (auth.username or "").encode()
    given_password = (auth.password or "").encode()
    # Compare both parts every time, so the timing reveals neither.
    user_ok = hmac.compare_digest(given_user, username)
    password_ok = hmac.compare_digest(given_password, password)
    return user_ok and password_ok


def challenge() -> Response:
    """The 401 answer that makes a browser ask for the admin login."""
    return Response(
        "Log in as the admin (ADMIN_USERNAME / ADMIN_PASSWORD) to see the jobs.\n",
        401,
        {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        mimetype="text/plain",
    )


def _password(settings: Settings) -> str:
    secret = settings.admin_password
    return "" if secret is None else secret.get_secret_value()
