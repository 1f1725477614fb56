"""One typed settings object, built once from the environment.

Every setting has an environment variable of the same name in upper case;
``.env.example`` documents them all. Settings are passed explicitly to the
parts that need them; nothing reads ``os.environ`` behind the caller's back.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from sync.errors import ConfigError
from sync.saved_settings import SettingsStore

DEFAULT_ALGA_ENDPOINT = "/clients"
DEFAULT_ALGA_NAME_FIELD = "client_name"
DEFAULT_ALGA_ID_FIELD = "client_id"
DEFAULT_KEY_FIELD = "notes"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_PREFIX = "aas"
DEFAULT_MAPPING_FILE = "mapping.yaml"
DEFAULT_WRITE_CONCURRENCY = 4
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_POLL_SECONDS = 300
DEFAULT_JOB_TIMEOUT = 120
DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_QUEUE = "sync"
DEFAULT_RETRY_DELAYS = "10 60 300 900"

# \Z, not $: a $ would also match before a final newline, letting "<uuid>\n" in.
UUID_PATTERN = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)
FIELD_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TenantPolicy(StrEnum):
    """What to do with the client of a tenant that is disabled or deleted."""

    DEACTIVATE = "deactivate"
    IGNORE = "ignore"


# How to fix each setting, shown beside any problem with it.
HINTS: dict[str, str] = {
    "ACRONIS_BASE_URL": "your data center's URL with /api/2, "
    "e.g. https://us2-cloud.acronis.com/api/2",
    "ACRONIS_AUTH_URL": "leave it empty to use ACRONIS_BASE_URL + /idp/token",
    "ACRONIS_CLIENT_ID": "create an API client under Settings > API clients "
    "in the Acronis management portal",
    "ACRONIS_CLIENT_SECRET": "it is shown once, when the API client is created",
    "ACRONIS_TENANT_ID": "your partner tenant's UUID",
    "ALGA_BASE_URL": "your AlgaPSA site with /api/v1, "
    "e.g. https://psa.example.com/api/v1",
    "ALGA_API_TOKEN": "create an API key under Profile > API keys in AlgaPSA",
    "ALGA_COMPANIES_ENDPOINT": "/clients for AlgaPSA v0.12 and newer, "
    "/companies before",
    "ALGA_COMPANY_SEARCH_ENDPOINT": "the list route filtered by name, "
    "normally the same as ALGA_COMPANIES_ENDPOINT",
    "ALGA_COMPANY_KEY_FIELD": "a client field that keeps free text and is "
    "returned in lists; notes is the one that works",
    "ALGA_NAME_FIELD": "client_name, or company_name before AlgaPSA v0.12",
    "ALGA_ID_FIELD": "client_id, or company_id before AlgaPSA v0.12",
    "REDIS_URL": "e.g. redis://127.0.0.1:6379/0, or empty to keep state in-process",
    "SYNC_WRITE_CONCURRENCY": "a whole number from 1 to 32",
    "SYNC_CRON": "five fields, e.g. 0 * * * * for hourly; empty disables it",
    "SYNC_TIMEZONE": "an IANA zone name such as UTC or Europe/Berlin",
    "WEBHOOK_SECRET": "one or more whsec_... secrets, separated by spaces",
    "SYNC_RETRY_DELAYS": "seconds before each retry, e.g. 10 60 300 900",
    "SYNC_LINK_ONLY": "true to create no client until `python -m sync suggest` "
    "has been reviewed, false to let the sync create clients",
}


def _hint(variable: str) -> str:
    return HINTS.get(variable, "see .env.example")


class Settings(BaseModel):
    """Everything the engine needs to know, validated on construction."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    acronis_base_url: AnyHttpUrl = Field(alias="ACRONIS_BASE_URL")
    acronis_auth_url: AnyHttpUrl | None = Field(None, alias="ACRONIS_AUTH_URL")
    acronis_client_id: str = Field(alias="ACRONIS_CLIENT_ID", min_length=1)
    acronis_client_secret: SecretStr = Field(alias="ACRONIS_CLIENT_SECRET")
    acronis_tenant_id: str = Field(alias="ACRONIS_TENANT_ID", pattern=UUID_PATTERN)

    alga_base_url: AnyHttpUrl = Field(alias="ALGA_BASE_URL")
    alga_api_token: SecretStr = Field(alias="ALGA_API_TOKEN")
    alga_tenant_header: str | None = Field(None, alias="ALGA_TENANT_ID")
    alga_clients_endpoint: str = Field(
        DEFAULT_ALGA_ENDPOINT, alias="ALGA_COMPANIES_ENDPOINT", pattern=r"^/\S*$"
    )
    alga_search_endpoint: str = Field(
        DEFAULT_ALGA_ENDPOINT, alias="ALGA_COMPANY_SEARCH_ENDPOINT", pattern=r"^/\S*$"
    )
    alga_key_field: str = Field(
        DEFAULT_KEY_FIELD, alias="ALGA_COMPANY_KEY_FIELD", pattern=FIELD_NAME_PATTERN
    )
    alga_name_field: str = Field(
        DEFAULT_ALGA_NAME_FIELD, alias="ALGA_NAME_FIELD", pattern=FIELD_NAME_PATTERN
    )
    alga_id_field: str = Field(
        DEFAULT_ALGA_ID_FIELD, alias="ALGA_ID_FIELD", pattern=FIELD_NAME_PATTERN
    )

    sync_cron: str = Field("", alias="SYNC_CRON")
    sync_timezone: str = Field("UTC", alias="SYNC_TIMEZONE")
    dry_run: bool = Field(False, alias="DRY_RUN")
    link_only: bool = Field(False, alias="SYNC_LINK_ONLY")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", alias="LOG_LEVEL"
    )
    redis_url: str = Field(DEFAULT_REDIS_URL, alias="REDIS_URL")
    redis_prefix: str = Field(
        DEFAULT_REDIS_PREFIX, alias="SYNC_REDIS_PREFIX", pattern=r"^[A-Za-z0-9_.-]+$"
    )
    mapping_file: Path = Field(Path(DEFAULT_MAPPING_FILE), alias="MAPPING_FILE")
    disabled_policy: TenantPolicy = Field(
        TenantPolicy.DEACTIVATE, alias="SYNC_DISABLED_POLICY"
    )
    deleted_policy: TenantPolicy = Field(
        TenantPolicy.DEACTIVATE, alias="SYNC_DELETED_POLICY"
    )
    write_concurrency: int = Field(
        DEFAULT_WRITE_CONCURRENCY, alias="SYNC_WRITE_CONCURRENCY", ge=1, le=32
    )
    connect_timeout: float = Field(
        DEFAULT_CONNECT_TIMEOUT, alias="HTTP_CONNECT_TIMEOUT", gt=0, le=120
    )
    read_timeout: float = Field(
        DEFAULT_READ_TIMEOUT, alias="HTTP_READ_TIMEOUT", gt=0, le=600
    )
    max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, alias="HTTP_MAX_ATTEMPTS", ge=1)

    # The always-on service: receiver, queue, workers and schedule.
    webhook_secrets: SecretStr | None = Field(None, alias="WEBHOOK_SECRET")
    sync_api_token: SecretStr | None = Field(None, alias="SYNC_API_TOKEN")
    alga_webhook_secret: SecretStr | None = Field(None, alias="ALGA_WEBHOOK_SECRET")
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES, alias="WEBHOOK_MAX_BYTES", ge=1024, le=16 * 1024**2
    )
    poll_seconds: int = Field(DEFAULT_POLL_SECONDS, alias="ACRONIS_POLL_SECONDS", ge=0)
    job_timeout: int = Field(DEFAULT_JOB_TIMEOUT, alias="SYNC_JOB_TIMEOUT", ge=10)
    queue_name: str = Field(
        DEFAULT_QUEUE, alias="SYNC_QUEUE", pattern=r"^[A-Za-z0-9_-]+$"
    )
    retry_delays: str = Field(
        DEFAULT_RETRY_DELAYS, alias="SYNC_RETRY_DELAYS", pattern=r"^\s*\d+(\s+\d+)*\s*$"
    )
    admin_username: str = Field("admin", alias="ADMIN_USERNAME", min_length=1)
    admin_password: SecretStr | None = Field(None, alias="ADMIN_PASSWORD")

    @field_validator("sync_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if value.strip() and not croniter.is_valid(value.strip()):
            raise ValueError(f"{value!r} is not a cron expression")
        return value.strip()

    @field_validator("sync_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone") from None
        return value

    @property
    def webhook_secret_list(self) -> list[str]:
        """Every accepted webhook secret; several while one is being rotated."""
        if self.webhook_secrets is None:
            return []
        raw = self.webhook_secrets.get_secret_value().replace(",", " ")
        return raw.split()

    @property
    def retry_delay_list(self) -> list[int]:
        """Seconds to wait before each retry of a job; one retry per entry."""
        return [int(delay) for delay in self.retry_delays.split()]

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "acronis_client_id", "acronis_client_secret", "alga_api_token", mode="before"
    )
    @classmethod
    def _strip_pasted_blanks(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("acronis_client_secret", "alga_api_token")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @property
    def token_url(self) -> str:
        """Where Acronis hands out access tokens."""
        if self.acronis_auth_url is not None:
            return str(self.acronis_auth_url)
        return f"{self.acronis_base.rstrip('/')}/idp/token"

    @property
    def acronis_base(self) -> str:
        return str(self.acronis_base_url).rstrip("/")

    @property
    def alga_base(self) -> str:
        return str(self.alga_base_url).rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``environ``; raise ConfigError naming each bad one."""
        values = {
            key: value
            for key, value in environ.items()
            if value != "" or key in _KEEP_EMPTY
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            lines = [describe_problem(error) for error in exc.errors()]
            raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None


# Variables where an empty value means something (off), not "use the default".
_KEEP_EMPTY = frozenset({"SYNC_CRON", "REDIS_URL"})


def describe_problem(error: Mapping[str, Any]) -> str:
    """Turn one pydantic error into "VARIABLE problem: how to fix it"."""
    variable = str(error["loc"][0]) if error["loc"] else "settings"
    if error["type"] == "missing":
        problem = "is not set"
    else:
        problem = f"is invalid ({error['msg']})"
    return f"{variable} {problem}: {_hint(variable)}"


def setting_problems(environ: Mapping[str, str]) -> dict[str, str]:
    """Every problem with ``environ``, keyed by variable, for ``sync check``."""
    try:
        Settings.from_env(environ)
    except ConfigError as exc:
        lines = str(exc).splitlines()[1:]
        return {line.strip().split(" ", 1)[0]: line.strip() for line in lines}
    return {}


Source = Literal["environment", "saved", "default"]


def _overrides(environ: Mapping[str, str], saved: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` that win over ``saved``.

    An empty variable does not hide a saved value: a ``.env`` copied from
    ``.env.example`` with its blanks must not undo what the setup saved.
    """
    return {k: v for k, v in environ.items() if v != "" or k not in saved}


def environment_over(
    saved: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """``saved`` values with the non-empty variables of ``environ`` over them."""
    return {**saved, **_overrides(environ, saved)}


def merged_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The setup wizard's saved values under ``environ`` (DATA_DIR, SETTINGS_KEY)."""
    saved = SettingsStore.from_environ(environ).load().values
    return environment_over(saved, environ)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Settings from ``environ`` over the saved ones; ConfigError names each problem.

    The command line, the web app, the workers and the scheduler all use this.
    """
    return Settings.from_env(merged_environment(environ))


def settings_sources(environ: Mapping[str, str]) -> dict[str, Source]:
    """Where each setting's value comes from, keyed by its variable."""
    saved = SettingsStore.from_environ(environ).load()
    names = set(saved.values)
    if saved.admin is not None:
        names.add("ADMIN_PASSWORD")
    # An empty variable sets nothing, unless empty means "off" for it.
    given = {k: v for k, v in environ.items() if v != "" or k in _KEEP_EMPTY}
    winning = _overrides(given, dict.fromkeys(names, ""))
    sources: dict[str, Source] = {}
    for field in Settings.model_fields.values():
        name = str(field.alias)
        if name in winning:
            sources[name] = "environment"
        else:
            sources[name] = "saved" if name in names else "default"
    return sources


class SettingsWatcher:
    """Loaded settings, loaded again whenever the saved file changes.

    Long-running processes hold one, so that a change made in the setup
    takes effect at their next job or request without a restart.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        self.store = SettingsStore.from_environ(self._environ)
        self._stamp: tuple[int, int] | None = None
        self._settings: Settings | None = None
        self._lock = threading.Lock()

    def current(self) -> Settings:
        """The settings as saved now; raises ConfigError while they are incomplete."""
        stamp = self.store.stamp()
        with self._lock:
            if self._settings is None or stamp != self._stamp:
                self._settings = None
                self._settings = load_settings(self._environ)
                self._stamp = stamp
            return self._settings

    def changed(self) -> bool:
        """Whether the saved file changed since :meth:`current` last loaded it."""
        return self.store.stamp() != self._stamp
