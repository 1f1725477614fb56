"""The admin login: one password, revocable sessions, and limited attempts.

There is one admin login, checked by :func:`credentials_ok` for ``/login``,
the Basic login of ``/rq`` and the API alike: ``ADMIN_USERNAME`` /
``ADMIN_PASSWORD`` when the environment sets a password, since the
environment overrides what is saved; otherwise the login the setup saved
(an argon2 hash in ``DATA_DIR``).

A login starts a session whose id is kept in Redis for
:data:`SESSION_SECONDS`; every request checks it there, so logging out or
resetting the setup ends it even for a copied cookie. Wrong passwords are
counted by flask-limiter per address only (a per-username count would let
anyone lock the admin out): after :data:`ATTEMPTS` every further attempt is
refused with 429 and a ``Retry-After``, and a client that keeps trying is
held off for an hour, then a day.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter, MetaLimit
from flask_limiter.util import get_remote_address
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response as BaseResponse
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from sync.errors import ConfigError
from sync.keys import Keys
from sync.saved_settings import Admin, SettingsStore
from sync.settings import DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL, Settings
from web.service import EXTENSION, Service, Services
from web.setup import PAGE_HEADERS, STORE, setup_open
from web.signatures import secret_matches

log = logging.getLogger(__name__)

blueprint = Blueprint("login", __name__)

SESSION_ADMIN = "admin"
SESSION_ID = "sid"
SESSION_SECONDS = 12 * 3600
ATTEMPTS = "5 per 15 minutes"
# Each refusal counts here; a client refused this often waits a longer window.
HOLD_OFF = ("3 per hour", "6 per day")
PREFIX_CONFIG = "ADMIN_LOGIN_LIMIT_PREFIX"
LIMITER = "admin_limiter"
REDIS_TIMEOUT = 1.0
WRONG = "wrong username or password"
NOT_SET_UP = "the service is not set up: finish /setup, then log in"
NO_REDIS = "Redis does not answer, so no session can be kept: retry in a moment"


class LoginForm(FlaskForm):
    """Username and password; CSRF-protected like every form."""

    username = StringField("Username", [DataRequired()])
    password = PasswordField("Password", [DataRequired()])


def _store() -> SettingsStore | None:
    found: SettingsStore | None = current_app.extensions.get(STORE)
    return found


def _service() -> Service | None:
    found: Services | None = current_app.extensions.get(EXTENSION)
    return found.current() if found is not None else None


def _settings() -> Settings | None:
    found = _service()
    return found.settings if found is not None else None


def saved_admin() -> Admin | None:
    """The login the setup saved; ConfigError when its file cannot be read."""
    store = _store()
    return store.load().admin if store is not None else None


def _env_login() -> tuple[str, str] | None:
    """``ADMIN_USERNAME`` and ``ADMIN_PASSWORD`` when a password is set."""
    settings = _settings()
    secret = settings.admin_password if settings is not None else None
    if settings is None or secret is None or not secret.get_secret_value():
        return None
    return settings.admin_username, secret.get_secret_value()


def admin_name() -> str | None:
    """Who may log in now, or None when no login is set anywhere."""
    env = _env_login()
    if env is not None:
        return env[0]
    saved = saved_admin()
    return saved.username if saved is not None else None


def credentials_ok(username: str, password: str) -> bool:
    """The one admin check: the environment's login if set, else the saved one.

    ConfigError when the saved settings cannot be read.
    """
    env = _env_login()
    if env is not None:
        # Both parts are compared every time, so the timing reveals neither.
        name_ok = secret_matches(username, env[0])
        password_ok = secret_matches(password, env[1])
        return name_ok and password_ok
    saved = saved_admin()
    return saved is not None and saved.verify(username, password)


def basic_login_ok() -> bool:
    """Whether this request carries the admin's login as HTTP Basic."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    try:
        return credentials_ok(auth.username or "", auth.password or "")
    except ConfigError as exc:
        log.warning("admin Basic login not checked: %s", exc)
        return False


def signed_in() -> bool:
    """Whether this request carries a live session of the current admin."""
    name = session.get(SESSION_ADMIN)
    sid = session.get(SESSION_ID)
    if not isinstance(name, str) or not isinstance(sid, str):
        return False
    service = _service()
    if service is None:
        return False
    try:
        current = admin_name()
        kept = service.redis.get(service.keys.admin_session(sid))
    except (ConfigError, redis.RedisError) as exc:
        log.warning("admin session not checked: %s", exc)
        return False
    if current is None or not isinstance(kept, bytes):
        return False
    # The session must be this admin's, and the admin still the same.
    same_admin = hmac.compare_digest(name.encode(), current.encode())
    return same_admin and hmac.compare_digest(kept, name.encode())


def _start_session(service: Service, username: str) -> None:
    """Keep a new session id in Redis; a fresh cookie (and CSRF token) too."""
    sid = secrets.token_urlsafe(32)
    key = service.keys.admin_session(sid)
    service.redis.set(key, username.encode(), ex=SESSION_SECONDS)
    session.clear()
    session[SESSION_ADMIN] = username
    session[SESSION_ID] = sid


def end_session() -> None:
    """Forget this request's session, here and in Redis."""
    sid = session.get(SESSION_ID)
    service = _service()
    session.clear()
    if isinstance(sid, str) and service is not None:
        service.redis.delete(service.keys.admin_session(sid))


def end_all_sessions(service: Service) -> int:
    """Forget every admin session of ``service``'s prefix; how many there were."""
    pattern = service.keys.admin_session_pattern
    found = list(service.redis.scan_iter(match=pattern, count=500))
    if found:
        service.redis.delete(*found)
    return len(found)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: an admin page of this site, nothing else."""
    parts = urlsplit(target or "")
    local = not parts.scheme and not parts.netloc and not target_is_odd(target)
    if local and parts.path.startswith(("/admin", "/rq")):
        return str(target)
    return "/admin"


def target_is_odd(target: str | None) -> bool:
    """Back-slashes and leading double slashes, which browsers read as hosts."""
    text = target or ""
    return "\\" in text or text.startswith("//")


def _login_page(form: LoginForm, status: int, error: str = "") -> tuple[str, int]:
    try:
        configured = admin_name() is not None
    except ConfigError as exc:
        configured, error = True, str(exc)
    page = render_template(
        "admin/login.html", form=form, error=error, configured=configured
    )
    return page, status


@blueprint.after_request
def _page_headers(response: BaseResponse) -> BaseResponse:
    response.headers.update(PAGE_HEADERS)
    return response


@blueprint.get("/login")
def login_page() -> BaseResponse | tuple[str, int]:
    if setup_open():
        return redirect("/setup")
    if signed_in():
        return redirect(safe_next(request.args.get("next")))
    return _login_page(LoginForm(), 200)


@blueprint.post("/login")
def login() -> BaseResponse | tuple[str, int]:
    """Start a session for the right password; a wrong one answers 401."""
    form = LoginForm()
    if not form.validate_on_submit():
        return _login_page(form, 400, "enter a username and a password")
    username = (form.username.data or "").strip()
    service = _service()
    try:
        accepted = credentials_ok(username, form.password.data or "")
    except ConfigError as exc:
        return _login_page(form, 503, str(exc))
    if not accepted:
        log.warning("admin login refused from %s", request.remote_addr)
        return _login_page(form, 401, WRONG)
    if service is None:
        return _login_page(form, 503, NOT_SET_UP)
    try:
        _start_session(service, username)
    except redis.RedisError as exc:
        log.warning("admin session not kept: Redis: %s", type(exc).__name__)
        return _login_page(form, 503, NO_REDIS)
    log.info("admin logged in from %s", request.remote_addr)
    return redirect(safe_next(request.args.get("next")))


@blueprint.post("/logout")
def logout() -> BaseResponse:
    try:
        end_session()
    except redis.RedisError as exc:
        # The cookie is gone; the id in Redis expires with its lifetime.
        log.warning("admin session not removed: Redis: %s", type(exc).__name__)
    return redirect(url_for("login.login_page"))


def _by_address() -> str:
    return f"{current_app.config[PREFIX_CONFIG]}:ip:{get_remote_address()}"


def _wrong_password(response: BaseResponse) -> bool:
    return response.status_code == 401


def _storage(
    connection: redis.Redis | None, settings: Settings | None, environ: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """Where the attempts are counted: the app's Redis, else REDIS_URL, else here."""
    if connection is not None:
        return "redis://", {"connection_pool": connection.connection_pool}
    url = (
        settings.redis_url if settings else environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    )
    if not url:
        return "memory://", {}
    options = {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT}
    return url, dict(options)


def limit_logins(
    app: Flask, connection: redis.Redis | None, environ: dict[str, str]
) -> Limiter:
    """Count wrong passwords per address on ``app``'s login; 429 past them."""
    settings = services_settings(app)
    # Before setup there are no settings, but the environment may name the
    # prefix; counters of two installs on one Redis must never mix.
    fallback = environ.get("SYNC_REDIS_PREFIX") or DEFAULT_REDIS_PREFIX
    prefix = settings.redis_prefix if settings else fallback
    app.config[PREFIX_CONFIG] = Keys(prefix).login_limit
    uri, options = _storage(connection, settings, environ)
    limiter = Limiter(
        _by_address,
        storage_uri=uri,
        storage_options=options,
        headers_enabled=True,
        retry_after="delta-seconds",
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    limiter.init_app(app)
    hold_off = [MetaLimit(limit) for limit in HOLD_OFF]
    view: Callable[..., Any] = app.view_functions["login.login"]
    app.view_functions["login.login"] = limiter.limit(
        ATTEMPTS,
        key_func=_by_address,
        methods=["POST"],
        deduct_when=_wrong_password,
        meta_limits=hold_off,
    )(view)
    app.extensions[LIMITER] = limiter
    return limiter


def services_settings(app: Flask) -> Settings | None:
    """The settings ``app`` starts with, or None in setup mode."""
    with app.app_context():
        return _settings()


def problem_page(status: int, title: str, message: str, back: str) -> BaseResponse:
    """A readable HTML answer for a refused form, with a link to ``back``."""
    page = render_template(
        "admin/problem.html", title=title, message=message, back=back
    )
    return current_app.make_response((page, status))


@blueprint.errorhandler(TooManyRequests)
def _too_many(error: TooManyRequests) -> BaseResponse:
    # flask-limiter adds Retry-After to this answer after the handler.
    log.warning("admin login held off for %s: %s", request.remote_addr, error)
    return problem_page(
        429,
        "Too many wrong passwords",
        "This address gave too many wrong passwords: wait 15 minutes (longer "
        "if they went on), then log in again.",
        url_for("login.login_page"),
    )


@blueprint.errorhandler(CSRFError)
def csrf_refused(error: CSRFError) -> BaseResponse:
    """The page for a form sent without its token, or with an expired one."""
    log.warning("form refused: %s", error.description)
    return problem_page(
        400,
        "The form has expired",
        f"{error.description} Open the page again and resend the form.",
        request.referrer if safe_referrer() else url_for("login.login_page"),
    )


def safe_referrer() -> bool:
    """Whether the Referer is an admin page of this site, fit to link back to."""
    parts = urlsplit(request.referrer or "")
    own = parts.netloc == request.host and parts.scheme in {"http", "https"}
    return own and parts.path.startswith(("/admin", "/login"))
