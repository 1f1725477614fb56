"""rq-dashboard mounted under ``/rq``, reachable only by the admin.

The dashboard has no CSRF protection, requeues every failed job on a plain
GET and shows job arguments and tracebacks, so every path under the prefix,
its static files included, asks for the admin first: a logged-in admin
session (``/login``), or, for scripts, the admin login as HTTP Basic
credentials, checked like ``/login`` (:func:`web.admin_auth.credentials_ok`).
A browser without either is sent to ``/login``. Without a Redis URL the
dashboard is not mounted and its paths answer 404. Its answers carry the
admin pages' headers; their Content-Security-Policy lets in the inline
scripts and styles and the template compiler the dashboard needs, and no
other origin.

A browser sends a saved Basic login along with requests other sites make
it send, so the login alone does not show the admin meant a request. The
guard therefore refuses, with 403, any request the browser marks as coming
from another site (``Sec-Fetch-Site``) or whose ``Origin`` is not this
server; and a request that changes something (any method but GET and HEAD,
and the dashboard's acting GET paths) must show this server as its
``Origin`` or ``Referer``. The origin is compared by host and port only, so
that TLS ended at a proxy in front does not refuse the admin.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit

import rq_dashboard
from flask import Flask, Response, redirect, request
from rq_dashboard.web import setup_rq_connection
from werkzeug.wrappers import Response as BaseResponse

from sync.errors import ConfigError
from sync.settings import Settings
from web.admin_auth import admin_name, basic_login_ok, signed_in
from web.errors import error_response
from web.setup import PAGE_HEADERS

log = logging.getLogger(__name__)

PREFIX = "/rq"
REALM = "alga-acronis-sync admin"
# Milliseconds between the dashboard's own refreshes (its default is 2,500):
# each refresh reads every registry, so a slower pace spares Redis.
POLL_INTERVAL_MS = 5000
# Path segments of the dashboard's routes that change jobs or queues; the
# requeue of a whole queue answers a GET.
ACTING_SEGMENTS = frozenset({"requeue", "delete", "empty", "compact"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})
# rq-dashboard runs inline scripts and compiles underscore templates (eval).
DASHBOARD_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def register_dashboard(app: Flask, settings: Settings, redis_url: str) -> None:
    """Mount rq-dashboard on ``app`` under ``/rq``, behind the admin login.

    Does nothing (so ``/rq`` stays a 404) without a Redis URL. ``settings``
    are those the app starts with; the login is looked up at each request,
    so that a changed admin takes effect at once.
    """
    if not redis_url:
        log.info("REDIS_URL is empty: the job dashboard at %s is off", PREFIX)
        return

    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    app.config["RQ_DASHBOARD_POLL_INTERVAL"] = POLL_INTERVAL_MS
    app.before_request(_guard)
    app.after_request(_dashboard_headers)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    setup_rq_connection(app)


def _guard() -> BaseResponse | None:
    """Stop dashboard requests from other sites and from anyone but the admin."""
    if not _under_prefix(request.path):
        return None
    reason = foreign_reason()
    if reason:
        log.warning("dashboard: refused %s %s (%s)", request.method, PREFIX, reason)
        return error_response(403, "cross_site", f"the job dashboard refuses {reason}")
    if not signed_in() and not basic_login_ok():
        return _login_needed()
    if acts(request.method, request.path) and not shows_own_origin():
        return error_response(
            403,
            "cross_site",
            "a change in the job dashboard needs an Origin or Referer "
            "of this server: use the dashboard's own buttons",
        )
    return None


def _dashboard_headers(response: Response) -> Response:
    if _under_prefix(request.path):
        response.headers.update(DASHBOARD_HEADERS)
    return response


def foreign_reason() -> str:
    """Why the request seems sent by another site, or "" when it does not."""
    if request.headers.get("Sec-Fetch-Site", "").lower() in FOREIGN_FETCH_SITES:
        return "requests sent from another site"
    origin = request.headers.get("Origin")
    if origin is not None and not _is_own(origin):
        return "requests from another origin"
    return ""


def acts(method: str, path: str) -> bool:
    """Whether a dashboard request changes jobs or queues."""
    if method.upper() not in SAFE_METHODS:
        return True
    return not ACTING_SEGMENTS.isdisjoint(path.split("/"))


def shows_own_origin() -> bool:
    origin = request.headers.get("Origin")
    if origin is not None:
        return _is_own(origin)
    referer = request.headers.get("Referer")
    return referer is not None and _is_own(referer)


def _is_own(url: str) -> bool:
    """Whether ``url`` (an Origin or a Referer) names this server."""
    try:
        parts = urlsplit(url.strip())
        host = parts.netloc.lower()
    except ValueError:
        return False
    own = request.host.lower()
    return parts.scheme in {"http", "https"} and bool(host) and host == own


def _under_prefix(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _login_needed() -> BaseResponse:
    """A browser goes to the login page; a script is told how to authenticate."""
    if request.accept_mimetypes.accept_html:
        return redirect(f"/login?{urlencode({'next': request.path})}")
    if _login_set():
        return challenge()
    return error_response(
        401, "unauthorized", "log in at /login as the admin to see the jobs"
    )


def challenge() -> Response:
    """The 401 answer that makes a browser ask for the admin login."""
    return error_response(
        401,
        "unauthorized",
        "log in as the admin (the login of /login) to see the jobs",
        {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )


def _login_set() -> bool:
    try:
        return admin_name() is not None
    except ConfigError:
        return False
