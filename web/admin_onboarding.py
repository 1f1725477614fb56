"""``/admin/onboarding`` and ``/admin/settings``.

Onboarding lists every tenant the next sync would create a client for, with
the unlinked AlgaPSA clients whose names come closest, so that a person can
link, exclude or accept each one; and it switches link-only mode, saved
through the setup's :class:`~sync.saved_settings.SettingsStore` beside the
other saved values. The settings page says where each value comes from and
never shows a secret; it can also reset the setup.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from pydantic import SecretStr
from werkzeug.wrappers import Response as BaseResponse

from sync import onboarding
from sync.errors import ConfigError, PermanentError, SyncError
from sync.runtime import redacted
from sync.saved_settings import SettingsStore, reset_setup
from sync.settings import Settings, settings_sources
from web.admin_auth import end_all_sessions, saved_admin
from web.admin_base import current, refused, runtime
from web.setup import ENVIRON, STORE

log = logging.getLogger(__name__)

blueprint = Blueprint("onboarding", __name__)

LINK_ONLY = "SYNC_LINK_ONLY"


def _store() -> SettingsStore | None:
    found: SettingsStore | None = current_app.extensions.get(STORE)
    return found


def _environ() -> dict[str, str]:
    found: dict[str, str] = current_app.extensions.get(ENVIRON, {})
    return found


def _accepted() -> set[str]:
    service = current()
    members = service.redis.smembers(service.keys.review_accepted)
    return {m.decode() if isinstance(m, bytes) else str(m) for m in members}


@blueprint.get("/onboarding")
def index() -> tuple[str, int]:
    """The review: one row per tenant the next sync would create a client for."""
    settings = current().settings
    try:
        with runtime() as found:
            suggestions = onboarding.review(found)
            excluded = sorted(found.links.excluded())
        error = ""
    except SyncError as exc:
        suggestions, excluded, error = [], [], str(exc)
    page = render_template(
        "admin/onboarding.html",
        suggestions=suggestions,
        excluded=excluded,
        accepted=_accepted(),
        error=error,
        link_only=settings.link_only,
        env_link_only=_environ().get(LINK_ONLY, ""),
        can_save=_store() is not None,
    )
    return page, 502 if error else 200


def _back() -> BaseResponse:
    return redirect(url_for("admin.onboarding.index"))


@blueprint.post("/onboarding/<tenant_id>/link")
def link(tenant_id: str) -> BaseResponse:
    """Link the tenant to the client picked; no client is written."""
    client_id = request.form.get("client_id", "").strip()
    try:
        with runtime() as found:
            onboarding.link_by_hand(found, tenant_id, client_id)
    except SyncError as exc:
        refused(exc, "Not linked")
        return _back()
    log.info("admin: tenant %s linked by hand to client %s", tenant_id, client_id)
    flash(f"Tenant {tenant_id} is linked to client {client_id}.", "ok")
    return _back()


@blueprint.post("/onboarding/<tenant_id>/create")
def accept(tenant_id: str) -> BaseResponse:
    """Let the sync create a client for the tenant: no exclusion, review done."""
    service = current()
    try:
        with runtime() as found:
            onboarding.include(found, tenant_id)
    except PermanentError:
        pass  # not excluded: nothing stands in the way
    service.redis.sadd(service.keys.review_accepted, tenant_id)
    note = " once link-only mode is off" if service.settings.link_only else ""
    flash(f"Tenant {tenant_id} will get a new client at the next sync{note}.", "ok")
    return _back()


@blueprint.post("/onboarding/<tenant_id>/exclude")
def exclude(tenant_id: str) -> BaseResponse:
    """Keep the tenant out of every sync."""
    service = current()
    try:
        with runtime() as found:
            onboarding.exclude(found, tenant_id)
    except SyncError as exc:
        refused(exc, "Not excluded")
        return _back()
    service.redis.srem(service.keys.review_accepted, tenant_id)
    flash(f"Tenant {tenant_id} is excluded from the sync.", "ok")
    return _back()


@blueprint.post("/onboarding/<tenant_id>/include")
def include(tenant_id: str) -> BaseResponse:
    """Let an excluded tenant be synced again."""
    try:
        with runtime() as found:
            onboarding.include(found, tenant_id)
    except SyncError as exc:
        refused(exc, "Not included")
        return _back()
    flash(f"Tenant {tenant_id} is synced again.", "ok")
    return _back()


@blueprint.post("/onboarding/link-only")
def link_only() -> BaseResponse:
    """Save link-only mode on or off, keeping every other saved value."""
    wanted = request.form.get("link_only") == "on"
    store = _store()
    if store is None:
        flash("Settings are fixed here: set SYNC_LINK_ONLY where they are.", "error")
        return _back()
    try:
        saved = store.load()
        values = {**saved.values, LINK_ONLY: "true" if wanted else "false"}
        store.save(values, admin=saved.admin)
    except (ConfigError, OSError) as exc:
        flash(f"Link-only mode not saved: {exc}", "error")
        return _back()
    log.info("admin: link-only mode saved %s", "on" if wanted else "off")
    state = "on: the sync creates no client" if wanted else "off: the sync creates"
    flash(f"Link-only mode is {state}.", "ok")
    if _environ().get(LINK_ONLY):
        flash(f"{LINK_ONLY} in the environment still wins over this.", "error")
    return _back()


def _shown(value: Any, secret: bool) -> str:
    if secret or isinstance(value, SecretStr):
        given = isinstance(value, SecretStr) and value.get_secret_value()
        return "set" if given else "not set"
    return "" if value is None else str(value)


def _secret(annotation: Any) -> bool:
    return "SecretStr" in str(annotation)


def setting_rows(
    settings: Settings, sources: dict[str, str], *, saved_login: bool = False
) -> list[dict[str, str]]:
    """Each setting by variable: its value (a secret only as "set") and source.

    ``saved_login`` says the setup saved an admin password (as a hash), so
    ``ADMIN_PASSWORD`` is set even when the environment has none. A password
    in ``REDIS_URL`` is masked.
    """
    rows = []
    for name, field in Settings.model_fields.items():
        variable = str(field.alias)
        value = _shown(getattr(settings, name), _secret(field.annotation))
        if variable == "ADMIN_PASSWORD" and saved_login:
            value = "set"
        elif variable == "REDIS_URL":
            value = redacted(value)
        source = sources.get(variable, "default")
        rows.append({"variable": variable, "value": value, "source": source})
    return rows


def _has_saved_login() -> bool:
    try:
        return saved_admin() is not None
    except ConfigError:
        return False


def _sources(settings: Settings) -> dict[str, str]:
    if _store() is None:
        # Settings handed to the app: those given count as the environment.
        given = settings.model_fields_set
        fields = Settings.model_fields.items()
        return {str(f.alias): "environment" for n, f in fields if n in given}
    return dict(settings_sources(_environ()))


@blueprint.get("/settings")
def settings_page() -> str:
    settings = current().settings
    rows = setting_rows(settings, _sources(settings), saved_login=_has_saved_login())
    return render_template(
        "admin/settings.html", rows=rows, can_reset=_store() is not None
    )


@blueprint.get("/settings/reset")
def confirm_reset() -> str:
    return render_template("admin/reset.html", can_reset=_store() is not None)


@blueprint.post("/settings/reset")
def reset() -> BaseResponse:
    """Forget the saved settings, end every admin session, lead ``/`` to the setup."""
    store = _store()
    if store is None or request.form.get("confirm") != "reset":
        flash("Nothing was reset: confirm by ticking the box.", "error")
        return redirect(url_for("admin.onboarding.confirm_reset"))
    # Sessions go first: they live under the prefix of the settings reset.
    ended = end_all_sessions(current())
    removed = reset_setup(store.data_dir)
    log.warning(
        "admin: setup reset (saved settings %s, %d sessions ended)",
        "removed" if removed else "none",
        ended,
    )
    session.clear()
    return redirect("/")
