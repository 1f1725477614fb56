"""The admin login: one password, a session cookie, and limited attempts.

The login is the one the setup saved (an argon2 hash in ``DATA_DIR``) or,
when none is saved, ``ADMIN_USERNAME`` / ``ADMIN_PASSWORD`` from the
environment. A session lasts :data:`SESSION_SECONDS` and is issued afresh
at every login. Wrong passwords are counted by flask-limiter, per address
and per username: after :data:`ATTEMPTS` every further attempt is refused
with 429 and a ``Retry-After``, and a client that keeps trying is held off
for an hour, then a day.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
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
from werkzeug.wrappers import Response as BaseResponse
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from sync.errors import ConfigError
from sync.keys import Keys
from sync.saved_settings import Admin, SettingsStore
from sync.settings import DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL, Settings
from web.service import services
from web.setup import STORE, setup_open

log = logging.getLogger(__name__)

blueprint = Blueprint("login", __name__)

SESSION_ADMIN = "admin"
SESSION_UNTIL = "admin_until"
SESSION_ID = "sid"
SESSION_SECONDS = 12 * 3600
ATTEMPTS = "5 per 15 minutes"
# Each refusal counts here; a client refused this often waits a longer window.
HOLD_OFF = ("3 per hour", "6 per day")
PREFIX_CONFIG = "ADMIN_LOGIN_LIMIT_PREFIX"
LIMITER = "admin_limiter"
REDIS_TIMEOUT = 1.0
WRONG = "wrong username or password"


class LoginForm(FlaskForm):
    """Username and password; CSRF-protected like every form."""

    username = StringField("Username", [DataRequired()])
    password = PasswordField("Password", [DataRequired()])


def _store() -> SettingsStore | None:
    found: SettingsStore | None = current_app.extensions.get(STORE)
    return found


def _settings() -> Settings | None:
    found = services().current()
    return found.settings if found is not None else None


def saved_admin() -> Admin | None:
    """The login the setup saved; ConfigError when its file cannot be read."""
    store = _store()
    return store.load().admin if store is not None else None


def admin_name() -> str | None:
    """Who may log in now, or None when no login is set anywhere."""
    saved = saved_admin()
    if saved is not None:
        return saved.username
    settings = _settings()
    if settings is None or not _env_password(settings):
        return None
    return settings.admin_username


def _env_password(settings: Settings) -> str:
    secret = settings.admin_password
    return "" if secret is None else secret.get_secret_value()


def credentials_ok(username: str, password: str) -> bool:
    """Check a login against the saved admin, or else the environment's."""
    saved = saved_admin()
    if saved is not None:
        return saved.verify(username, password)
    settings = _settings()
    if settings is None or not _env_password(settings):
        return False
    # Both parts are compared every time, so the timing reveals neither.
    name_ok = hmac.compare_digest(username.encode(), settings.admin_username.encode())
    password_ok = hmac.compare_digest(
        password.encode(), _env_password(settings).encode()
    )
    return name_ok and password_ok


def signed_in() -> bool:
    """Whether this request carries a live session of the current admin."""
    name = session.get(SESSION_ADMIN)
    until = session.get(SESSION_UNTIL, 0)
    if not isinstance(name, str) or not isinstance(until, int | float):
        return False
    if time.time() >= until:
        return False
    try:
        current = admin_name()
    except ConfigError:
        return False
    return current is not None and hmac.compare_digest(name.encode(), current.encode())


def _start_session(username: str) -> None:
    # A fresh session (and so a fresh CSRF token) at every login.
    session.clear()
    session[SESSION_ADMIN] = username
    session[SESSION_UNTIL] = int(time.time()) + SESSION_SECONDS
    session[SESSION_ID] = secrets.token_urlsafe(16)


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
    try:
        accepted = credentials_ok(username, form.password.data or "")
    except ConfigError as exc:
        return _login_page(form, 503, str(exc))
    if not accepted:
        log.warning("admin login refused from %s", request.remote_addr)
        return _login_page(form, 401, WRONG)
    _start_session(username)
    log.info("admin logged in from %s", request.remote_addr)
    return redirect(safe_next(request.args.get("next")))


@blueprint.post("/logout")
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("login.login_page"))


def _by_address() -> str:
    return f"{current_app.config[PREFIX_CONFIG]}:ip:{get_remote_address()}"


def _by_username() -> str:
    name = request.form.get("username", "").strip().casefold() or "-"
    return f"{current_app.config[PREFIX_CONFIG]}:user:{name}"


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
    """Count wrong passwords on ``app``'s login route; refuse with 429 past them."""
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
    for key in (_by_address, _by_username):
        view = limiter.limit(
            ATTEMPTS,
            key_func=key,
            methods=["POST"],
            deduct_when=_wrong_password,
            meta_limits=hold_off,
        )(view)
    app.view_functions["login.login"] = view
    app.extensions[LIMITER] = limiter
    return limiter


def services_settings(app: Flask) -> Settings | None:
    """The settings ``app`` starts with, or None in setup mode."""
    with app.app_context():
        return _settings()
