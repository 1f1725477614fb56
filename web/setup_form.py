"""The setup form, its validation, and the wizard's "Test connection" probes.

The probes make real calls with the values typed in the form: an Acronis
token, the partner tenant and its customers, or one page of AlgaPSA clients.
They answer with the clients' own error messages, which already say what to
fix (a refused secret, an unknown data center, a key without permission).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, Form, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from sync.acronis import AcronisClient, MemoryTokenCache, is_customer
from sync.alga import AlgaClient
from sync.checks import PARTNER_KINDS
from sync.errors import ConfigError, SyncError
from sync.http import CallCounter
from sync.keys import Keys
from sync.settings import Settings, environment_over

MIN_PASSWORD = 12
ACRONIS_PATH = "/api/2"
ALGA_PATH = "/api/v1"
DEFAULT_CRON = "0 * * * *"

# Quick answers for a person waiting on a button: one attempt, short waits.
PROBE_LIMITS = {
    "HTTP_MAX_ATTEMPTS": "1",
    "HTTP_CONNECT_TIMEOUT": "5",
    "HTTP_READ_TIMEOUT": "20",
    "REDIS_URL": "",
}
# Stand-ins for the remote a probe does not call; Settings needs both.
UNUSED_ACRONIS = {
    "ACRONIS_BASE_URL": "http://127.0.0.1:9/api/2",
    "ACRONIS_CLIENT_ID": "unused",
    "ACRONIS_CLIENT_SECRET": "unused",
    "ACRONIS_TENANT_ID": "00000000-0000-0000-0000-000000000000",
}
UNUSED_ALGA = {
    "ALGA_BASE_URL": "http://127.0.0.1:9/api/v1",
    "ALGA_API_TOKEN": "unused",
}


def web_url(form: Form, field: Field) -> None:
    """Accept only an http or https URL with a host."""
    parts = urlsplit(str(field.data or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("enter an http:// or https:// address")


def with_api_path(url: str, path: str) -> str:
    """``url`` ending in ``path``; a bare site address gets the path added."""
    url = url.strip().rstrip("/")
    if urlsplit(url).path in ("", "/"):
        return url + path
    return url


class SetupForm(FlaskForm):
    """Everything the first run asks for; CSRF-protected by FlaskForm."""

    acronis_base_url = StringField(
        "Data center URL", [DataRequired(), web_url], default="https://"
    )
    acronis_client_id = StringField("API client id", [DataRequired()])
    acronis_client_secret = PasswordField("API client secret", [DataRequired()])
    acronis_tenant_id = StringField("Partner tenant id", [DataRequired()])
    alga_base_url = StringField(
        "AlgaPSA URL", [DataRequired(), web_url], default="https://"
    )
    alga_api_token = PasswordField("API key", [DataRequired()])
    sync_cron = StringField("Schedule (cron)", default=DEFAULT_CRON)
    sync_timezone = StringField("Time zone", [DataRequired()], default="UTC")
    dry_run = BooleanField("Start in dry-run mode (plan and report, write nothing)")
    create_clients = BooleanField(
        "Create clients right away, even when AlgaPSA already has clients"
    )
    admin_username = StringField("Admin username", [DataRequired()], default="admin")
    admin_password = PasswordField(
        "Admin password",
        [DataRequired(), Length(min=MIN_PASSWORD, message="at least 12 characters")],
    )
    admin_password_again = PasswordField(
        "Admin password again",
        [EqualTo("admin_password", message="the two passwords differ")],
    )
    save_anyway = BooleanField("Save even though a connection test failed")

    def acronis_values(self) -> dict[str, str]:
        return {
            "ACRONIS_BASE_URL": with_api_path(
                self.acronis_base_url.data or "", ACRONIS_PATH
            ),
            "ACRONIS_CLIENT_ID": (self.acronis_client_id.data or "").strip(),
            "ACRONIS_CLIENT_SECRET": (self.acronis_client_secret.data or "").strip(),
            "ACRONIS_TENANT_ID": (self.acronis_tenant_id.data or "").strip().lower(),
        }

    def alga_values(self) -> dict[str, str]:
        return {
            "ALGA_BASE_URL": with_api_path(self.alga_base_url.data or "", ALGA_PATH),
            "ALGA_API_TOKEN": (self.alga_api_token.data or "").strip(),
        }

    def values(self, *, link_only: bool) -> dict[str, str]:
        """The settings to save, named by their variables."""
        return {
            **self.acronis_values(),
            **self.alga_values(),
            "SYNC_CRON": (self.sync_cron.data or "").strip(),
            "SYNC_TIMEZONE": (self.sync_timezone.data or "").strip(),
            "DRY_RUN": _word(bool(self.dry_run.data)),
            "SYNC_LINK_ONLY": _word(link_only),
            "ADMIN_USERNAME": (self.admin_username.data or "").strip(),
        }

    def field_of(self, variable: str) -> Field | None:
        """The form field that sets ``variable``, if the form has one."""
        found = getattr(self, variable.lower(), None)
        return found if isinstance(found, Field) else None


class TokenForm(FlaskForm):
    """The setup token, asked for before the wizard shows any setting."""

    token = PasswordField("Setup token", [DataRequired()])


def _word(flag: bool) -> str:
    return "true" if flag else "false"


def settings_problems(
    values: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """What Settings would refuse once ``environ`` is laid over ``values``."""
    try:
        Settings.from_env(environment_over(values, environ))
    except ConfigError as exc:
        lines = (line.strip() for line in str(exc).splitlines()[1:])
        return dict(line.split(" ", 1) for line in lines if " " in line)
    return {}


@dataclass(frozen=True)
class ProbeResult:
    """What a "Test connection" button shows: success or the precise error."""

    ok: bool
    message: str
    clients: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "clients": self.clients}


def _probe_settings(
    values: Mapping[str, str], stand_ins: Mapping[str, str], environ: Mapping[str, str]
) -> Settings:
    return Settings.from_env({**environ, **stand_ins, **values, **PROBE_LIMITS})


def probe_acronis(values: Mapping[str, str], environ: Mapping[str, str]) -> ProbeResult:
    """Fetch a token, read the partner tenant and count its customer tenants."""
    try:
        settings = _probe_settings(values, UNUSED_ALGA, environ)
        client = AcronisClient(
            settings,
            counter=CallCounter(),
            token_cache=MemoryTokenCache(),
            keys=Keys("setup"),
        )
        client.access_token()
        partner = client.get_tenant(settings.acronis_tenant_id)
        if partner is None:
            return ProbeResult(False, _no_partner(settings.acronis_tenant_id))
        if partner.get("kind") not in PARTNER_KINDS:
            return ProbeResult(False, _not_partner(partner))
        customers = sum(1 for t in client.list_tenants().tenants if is_customer(t))
    except (ConfigError, SyncError) as exc:
        return ProbeResult(False, str(exc))
    name = partner.get("name")
    return ProbeResult(True, f"Connected to {name!r}: {customers} customer tenants.")


def _no_partner(tenant_id: str) -> str:
    return (
        f"the API client works, but sees no tenant {tenant_id}: enter your "
        "partner tenant's id (the tenant the API client was created in)"
    )


def _not_partner(tenant: Mapping[str, Any]) -> str:
    return (
        f"{tenant.get('name')!r} is a {tenant.get('kind')} tenant, not a partner: "
        "enter the partner tenant whose customers you sync"
    )


def probe_alga(values: Mapping[str, str], environ: Mapping[str, str]) -> ProbeResult:
    """Read one page of AlgaPSA clients; say how many the key can read."""
    try:
        settings = _probe_settings(values, UNUSED_ACRONIS, environ)
        total = AlgaClient(settings, counter=CallCounter()).count_clients()
    except (ConfigError, SyncError) as exc:
        return ProbeResult(False, str(exc))
    message = f"Connected: the API key reads {total} clients."
    if total:
        message += " Link-only mode will be on: see the note below."
    return ProbeResult(True, message, total)
