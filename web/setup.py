"""First-run setup: the wizard at ``/setup``, and the service's setup mode.

Until settings exist (saved by the wizard, or complete in the environment)
the app is in setup mode: ``/`` leads to ``/setup``, and every webhook and
API route but ``/health`` answers 503 ``not_configured``. Once the wizard
has saved, ``/setup`` answers 403 until :func:`sync.saved_settings.reset_setup`
(the Settings page's reset, or ``python -m sync reset-setup``) opens it again.

The wizard, its saving and its connection tests answer only a session that
has shown the setup token (:mod:`web.setup_token`). Saving tests both
remotes first, and saves failing ones only when the admin says so.

:func:`configure_security` (session key, cookie flags, CSRF) is kept apart
so that later admin pages can rely on the same session and CSRF protection.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path

import rq_dashboard
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
)
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response as BaseResponse
from wtforms import Field, ValidationError

from sync.saved_settings import Admin, SettingsStore, hash_password
from sync.settings import HINTS
from web import api, webhooks
from web.errors import error_response
from web.service import services
from web.setup_form import (
    ProbeResult,
    SetupForm,
    TokenForm,
    probe_acronis,
    probe_alga,
    settings_problems,
    web_url,
)
from web.setup_token import (
    announce_at_start,
    forget_token,
    remember,
    setup_token,
    token_ok,
    token_path,
    token_shown,
    token_variable,
)

log = logging.getLogger(__name__)

blueprint = Blueprint("setup", __name__)
csrf = CSRFProtect()

STORE = "setup_store"
ENVIRON = "setup_environ"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
# Routes that need settings; /health stays open so the container looks alive.
GATED_BLUEPRINTS = frozenset({"webhooks", "api"})
OPEN_ENDPOINTS = frozenset({"api.health"})
# Variables the wizard asks for, to say which the environment overrides.
WIZARD_VARIABLES = (
    "ACRONIS_BASE_URL",
    "ACRONIS_CLIENT_ID",
    "ACRONIS_CLIENT_SECRET",
    "ACRONIS_TENANT_ID",
    "ALGA_BASE_URL",
    "ALGA_API_TOKEN",
    "SYNC_CRON",
    "SYNC_TIMEZONE",
    "DRY_RUN",
    "SYNC_LINK_ONLY",
    "ADMIN_USERNAME",
)
WRONG_TOKEN = "that is not the setup token"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
}


def configure_security(
    app: Flask, store: SettingsStore | None, environ: Mapping[str, str]
) -> None:
    """Session key from DATA_DIR, safe cookie flags, and CSRF on every form.

    Webhooks and the API authenticate each request themselves and are exempt.
    """
    app.config.update(
        SECRET_KEY=_session_key(store),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=_flag(environ.get("SESSION_COOKIE_SECURE", "")),
    )
    csrf.init_app(app)
    for exempt in (webhooks.blueprint, api.blueprint, rq_dashboard.blueprint):
        csrf.exempt(exempt)


def _flag(raw: str) -> bool:
    return raw.strip().lower() in TRUE_WORDS


def _session_key(store: SettingsStore | None) -> str:
    if store is None:
        return secrets.token_hex(32)
    try:
        return store.session_key()
    except OSError as exc:
        # Sessions then last only as long as this process; saving will say why.
        log.error("cannot keep the session key in %s: %s", store.data_dir, exc)
        return secrets.token_hex(32)


def register_setup(
    app: Flask, store: SettingsStore | None, environ: Mapping[str, str]
) -> None:
    """Add the wizard and the setup-mode gate to ``app``."""
    app.extensions[STORE] = store
    app.extensions[ENVIRON] = dict(environ)
    configure_security(app, store, environ)
    app.before_request(_refuse_until_configured)
    app.register_blueprint(blueprint)
    with app.app_context():
        if store is not None and setup_open():
            announce_at_start(environ, store.data_dir)


def _store() -> SettingsStore | None:
    found: SettingsStore | None = current_app.extensions[STORE]
    return found


def _environ() -> dict[str, str]:
    found: dict[str, str] = current_app.extensions[ENVIRON]
    return found


def setup_open() -> bool:
    """Whether the wizard may run: nothing saved, and the environment incomplete."""
    store = _store()
    if store is None or store.configured():
        return False
    return services().current() is None


def _refuse_until_configured() -> Response | None:
    if request.blueprint not in GATED_BLUEPRINTS or request.endpoint in OPEN_ENDPOINTS:
        return None
    if services().current() is not None:
        return None
    return error_response(
        503,
        "not_configured",
        "the service is not set up yet: open /setup in a browser, or set its "
        "variables in .env (see .env.example)",
    )


@blueprint.after_request
def _page_headers(response: Response) -> Response:
    response.headers.update(PAGE_HEADERS)
    return response


@blueprint.get("/")
def index() -> BaseResponse:
    """The wizard while setting up; afterwards the admin pages."""
    return redirect("/setup" if setup_open() else "/admin")


def _closed() -> tuple[str, int]:
    return render_template("setup_closed.html"), 403


def _overridden() -> list[str]:
    environ = _environ()
    return [name for name in WIZARD_VARIABLES if environ.get(name, "")]


def _form_page(form: SetupForm, status: int = 200, **extra: object) -> tuple[str, int]:
    page = render_template(
        "setup.html", form=form, overridden=_overridden(), hints=HINTS, **extra
    )
    return page, status


def _data_dir() -> Path:
    store = _store()
    assert store is not None  # the wizard is open only with a store
    return store.data_dir


def _token() -> str | None:
    return setup_token(_environ(), _data_dir())


def _token_page(status: int, error: str = "") -> tuple[str, int]:
    problem = error
    if _token() is None:
        problem = (
            f"cannot write {token_path(_data_dir())}: make DATA_DIR writable, "
            "or set SETUP_TOKEN in the environment"
        )
    named = token_variable(_environ())
    page = render_template(
        "setup_token.html", form=TokenForm(), error=problem, named=named
    )
    return page, status


def _accept_token() -> BaseResponse:
    remember(_token() or "")
    # A fresh address, so the token leaves the address bar and history.
    return redirect("/setup", 303)


@blueprint.get("/setup")
def setup_page() -> BaseResponse | tuple[str, int]:
    """The wizard, once this session has shown the setup token."""
    if not setup_open():
        return _closed()
    given = request.args.get("token")
    if given is not None:
        if token_ok(given, _token()):
            return _accept_token()
        return _token_page(403, WRONG_TOKEN)
    if not token_shown(_token()):
        return _token_page(200)
    return _form_page(SetupForm())


@blueprint.post("/setup/token")
def enter_token() -> BaseResponse | tuple[str, int]:
    """Check the typed setup token; the wizard follows on success."""
    if not setup_open():
        return _closed()
    form = TokenForm()
    if form.validate_on_submit() and token_ok(form.token.data or "", _token()):
        return _accept_token()
    log.warning("setup: a wrong setup token was entered")
    return _token_page(403, WRONG_TOKEN)


@blueprint.post("/setup")
def save_setup() -> tuple[str, int]:
    """Validate, test both remotes, decide link-only mode, save; else re-show."""
    if not setup_open():
        return _closed()
    if not token_shown(_token()):
        return _token_page(403, "enter the setup token first")
    form = SetupForm()
    if not form.validate_on_submit() or not _merged_ok(form):
        return _form_page(form, 422)

    acronis = probe_acronis(form.acronis_values(), _environ())
    alga = probe_alga(form.alga_values(), _environ())
    failures = _failures(acronis, alga)
    if failures and not form.save_anyway.data:
        form.form_errors.extend(failures)
        return _form_page(form, 422, failed=True)
    return _save(form, alga, failures)


def _failures(acronis: ProbeResult, alga: ProbeResult) -> list[str]:
    """Each failed connection test as a line that names its remote."""
    named = (("Acronis", acronis), ("AlgaPSA", alga))
    return [
        f"{name} connection test failed: {result.message}"
        for name, result in named
        if not result.ok
    ]


def _save(form: SetupForm, alga: ProbeResult, failures: list[str]) -> tuple[str, int]:
    # An AlgaPSA that already has clients is reviewed before any is created;
    # when it cannot be read now, the careful choice is the same.
    has_clients = bool(alga.clients) or not alga.ok
    link_only = has_clients and not form.create_clients.data
    store = _store()
    assert store is not None  # setup_open() said so
    try:
        store.save(form.values(link_only=link_only), admin=_admin(form))
    except OSError as exc:
        problem = f"cannot write {store.path} ({exc.strerror}): make DATA_DIR writable"
        form.form_errors.append(problem)
        return _form_page(form, 500)
    forget_token(store.data_dir)
    log.info(
        "setup saved; link-only mode %s; %d connection tests failed",
        "on" if link_only else "off",
        len(failures),
    )
    page = render_template(
        "setup_done.html", link_only=link_only, alga=alga, failures=failures
    )
    return page, 200


def _admin(form: SetupForm) -> Admin:
    username = (form.admin_username.data or "").strip()
    return Admin(username, hash_password(form.admin_password.data or ""))


def _merged_ok(form: SetupForm) -> bool:
    """Put each problem of the settings as merged beside its field; True if none."""
    problems = settings_problems(form.values(link_only=True), _environ())
    overridden = _overridden()
    for variable, problem in problems.items():
        field = form.field_of(variable)
        if field is not None and variable not in overridden:
            field.errors = [*field.errors, problem]
        else:
            form.form_errors.append(f"{variable} (set in the environment) {problem}")
    return not problems


@blueprint.post("/setup/test/<remote>")
def test_connection(remote: str) -> tuple[Response, int]:
    """Try the typed credentials of one remote; JSON ``{ok, message, clients}``."""
    if not setup_open():
        answer = {"code": "setup_closed", "message": "the setup is already done"}
        return jsonify({"error": answer}), 403
    if not token_shown(_token()):
        answer = {"code": "setup_token", "message": "enter the setup token first"}
        return jsonify({"error": answer}), 403
    form = SetupForm()
    result: ProbeResult | None
    if remote == "acronis":
        result = _url_refused(form, form.acronis_base_url)
        result = result or probe_acronis(form.acronis_values(), _environ())
    elif remote == "alga":
        result = _url_refused(form, form.alga_base_url)
        result = result or probe_alga(form.alga_values(), _environ())
    else:
        answer = {"code": "not_found", "message": "test acronis or alga"}
        return jsonify({"error": answer}), 404
    return jsonify(result.to_dict()), 200


def _url_refused(form: SetupForm, field: Field) -> ProbeResult | None:
    try:
        web_url(form, field)
    except ValidationError as exc:
        return ProbeResult(False, str(exc))
    return None
