"""``sync check``: is every setting right, and do both remotes answer?"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sync.errors import MappingError, SyncError
from sync.mapping_file import load_mapping
from sync.runtime import (
    Runtime,
    build_runtime,
    connect_redis,
    redacted,
    require_marker,
)
from sync.settings import Settings, setting_problems

PARTNER_KINDS = frozenset({"root", "partner", "folder"})
# Every setting typed as a secret is shown only as "set", never its value.
SECRETS = frozenset(
    str(field.alias)
    for field in Settings.model_fields.values()
    if "SecretStr" in str(field.annotation)
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def _setting_results(environ: Mapping[str, str]) -> list[CheckResult]:
    problems = setting_problems(environ)
    results = []
    for field in Settings.model_fields.values():
        name = str(field.alias)
        if name in problems:
            results.append(CheckResult(name, False, problems[name]))
            continue
        value = environ.get(name, "")
        if name in SECRETS:
            shown = "set" if value.strip() else "not set"
        else:
            shown = redacted(value) if value else f"default ({field.default})"
        results.append(CheckResult(name, True, shown))
    return results


def _remote_checks(runtime: Runtime) -> list[tuple[str, Callable[[], str]]]:
    settings = runtime.settings

    def token() -> str:
        runtime.acronis.access_token()
        return f"token issued by {settings.token_url}"

    def partner() -> str:
        tenant = runtime.acronis.get_tenant(settings.acronis_tenant_id)
        if tenant is None:
            raise SyncError(
                "no such tenant: set ACRONIS_TENANT_ID to your partner tenant's UUID"
            )
        found = f"{tenant.get('name')!r} (kind {tenant.get('kind')})"
        if tenant.get("kind") not in PARTNER_KINDS:
            raise SyncError(
                f"{found} is not a partner: set ACRONIS_TENANT_ID to the partner "
                "tenant whose customers you sync"
            )
        return found

    def alga() -> str:
        total = runtime.alga.count_clients()
        return f"{total} clients readable at {settings.alga_base}"

    return [
        ("Acronis token", token),
        ("Acronis partner tenant", partner),
        ("AlgaPSA read", alga),
    ]


def run_checks(environ: Mapping[str, str]) -> list[CheckResult]:
    """Every check, in the order a person would fix them."""
    results = _setting_results(environ)
    if not all(result.ok for result in results):
        results.append(
            CheckResult("remote calls", False, "skipped: fix the settings above first")
        )
        return results

    settings = Settings.from_env(environ)
    logging.getLogger("sync").setLevel(logging.ERROR)
    try:
        mapping = require_marker(settings, load_mapping(settings.mapping_file))
    except MappingError as exc:
        return [*results, CheckResult("mapping", False, str(exc))]
    results.append(CheckResult("mapping", True, f"{settings.mapping_file} loads"))
    results.append(_redis_result(settings.redis_url))

    runtime = build_runtime(settings, mapping=mapping)
    for name, call in _remote_checks(runtime):
        try:
            results.append(CheckResult(name, True, call()))
        except SyncError as exc:
            results.append(CheckResult(name, False, str(exc)))
    return results


def _redis_result(url: str) -> CheckResult:
    if not url:
        return CheckResult("Redis", True, "not used (REDIS_URL is empty)")
    if connect_redis(url) is None:
        return CheckResult(
            "Redis",
            False,
            "does not answer: start Redis, or set REDIS_URL= (empty) for one-shot "
            "runs that keep their state in-process",
        )
    return CheckResult("Redis", True, "answers")
