"""How an Acronis tenant becomes an AlgaPSA client body and location body.

``mapping.yaml`` holds one rule per client field and per location field. A
rule takes its value ``from`` a dotted path into the tenant, from a
``template`` with ``{dotted.path}`` placeholders, or from a constant
``value``; then applies its ``transforms`` in order. Client rules say ``on``
which occasion they are written: ``create`` only, or every ``sync``.

Mapping a tenant is a pure function of the tenant; reading and checking the
file is :mod:`sync.mapping_file`'s work.
"""

from __future__ import annotations

import copy
import functools
import re
from collections import abc
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import pycountry
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from sync.errors import MappingError

PATH_PATTERN = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")

# Lengths AlgaPSA enforces; its validator counts UTF-16 code units.
CLIENT_LIMITS = {"client_name": 255, "default_currency_code": 3}
LOCATION_LIMITS = {"country_code": 3}

LOCATION_REQUIRED = ("address_line1", "city", "country_code", "country_name")
TRANSFORMS = ("trim", "truncate", "lower", "upper", "negate", "default", "country_name")
NEEDS_ARGUMENT = frozenset({"default"})
TAKES_ARGUMENT = frozenset({"default", "truncate"})


class Mode(StrEnum):
    """When a client field is written."""

    CREATE = "create"
    SYNC = "sync"


class Step(BaseModel):
    """One transform, with its argument when it takes one."""

    model_config = ConfigDict(frozen=True)

    name: str
    arg: Any = None


def _parse_step(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        name, arg, given = raw, None, False
    elif isinstance(raw, dict) and len(raw) == 1:
        ((name, arg),) = raw.items()
        given = True
    else:
        raise ValueError("a transform is a name such as trim, or {truncate: 40}")
    if name not in TRANSFORMS:
        raise ValueError(
            f"unknown transform {name!r}: use one of {', '.join(TRANSFORMS)}"
        )
    if given and name not in TAKES_ARGUMENT:
        raise ValueError(f"{name} takes no argument: write it as a plain name")
    if not given and name in NEEDS_ARGUMENT:
        raise ValueError(f"{name} needs a value, e.g. {{{name}: ''}}")
    if name == "truncate" and given and not _positive_int(arg):
        raise ValueError("truncate needs a positive whole number, e.g. {truncate: 40}")
    return {"name": name, "arg": arg}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class Rule(BaseModel):
    """Where one field's value comes from and what is done to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_: str | None = Field(None, alias="from")
    template: str | None = None
    value: Any = None
    transforms: tuple[Annotated[Step, BeforeValidator(_parse_step)], ...] = ()
    on: Mode | None = None

    @field_validator("from_")
    @classmethod
    def _check_path(cls, path: str | None) -> str | None:
        if path is not None and not PATH_PATTERN.match(path):
            raise ValueError(f"{path!r} is not a dotted path such as contact.email")
        return path

    @field_validator("template")
    @classmethod
    def _check_template(cls, template: str | None) -> str | None:
        for match in PLACEHOLDER.finditer(template or ""):
            inner = match.group(1)
            if inner is not None and not PATH_PATTERN.match(inner):
                raise ValueError(f"placeholder {{{inner}}} is not a dotted path")
        return template

    @model_validator(mode="after")
    def _one_source(self) -> Rule:
        sources = [
            s for s in ("from_", "template", "value") if s in self.model_fields_set
        ]
        if len(sources) != 1:
            raise ValueError(
                "a rule needs exactly one of from, template or value"
                f" (found {len(sources) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        """Which source the rule uses: from, template or value."""
        if self.from_ is not None:
            return "from"
        return "template" if self.template is not None else "value"


class MappingFile(BaseModel):
    """The whole file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client: dict[str, Rule]
    location: dict[str, Rule] | None = None


@dataclass(frozen=True)
class MappedTenant:
    """A tenant mapped onto an AlgaPSA client and its location.

    ``sync_fields`` names the dotted targets that are kept in step and have a
    value in ``client``; ``location`` is None while ``location_missing`` names
    required location fields without a value.
    """

    tenant_id: str
    client: dict[str, Any]
    sync_fields: frozenset[str]
    location: dict[str, Any] | None
    location_missing: tuple[str, ...]


@dataclass(frozen=True)
class _Field:
    section: str
    target: str
    rule: Rule
    mode: Mode
    limit: int | None


class Mapping:
    """A loaded, validated mapping file."""

    def __init__(self, parsed: MappingFile, source: str) -> None:
        self.source = source
        self._client = [_client_field(t, r) for t, r in parsed.client.items()]
        self._location = [
            _Field("location", t, r, Mode.CREATE, LOCATION_LIMITS.get(t))
            for t, r in (parsed.location or {}).items()
        ]
        self._has_location = parsed.location is not None

    def map_tenant(self, tenant: abc.Mapping[str, Any]) -> MappedTenant:
        """Map one tenant; raise MappingError (with the tenant id) if it cannot be."""
        tenant_id = str(tenant.get("id") or "")
        try:
            client, sync_fields = self._map_client(tenant)
            location, missing = self._map_location(tenant)
        except MappingError as exc:
            raise exc.for_tenant(tenant_id) from None
        name = client.get("client_name")
        if not isinstance(name, str) or not name.strip():
            raise MappingError(
                f"tenant {tenant_id or '(no id)'} maps to an empty client_name: "
                "name the tenant in Acronis, or check the client_name rule in "
                f"{self.source}",
                tenant_id=tenant_id,
            )
        return MappedTenant(tenant_id, client, sync_fields, location, missing)

    def references_tenant_id(self, target: str) -> bool:
        """Whether the rule for client field ``target`` carries the tenant id."""
        for item in self._client:
            if item.target == target:
                return _uses_tenant_id(item.rule)
        return False

    def describe(self) -> list[dict[str, Any]]:
        """Every rule as plain data, for display."""
        return [_describe(item) for item in (*self._client, *self._location)]

    def _map_client(
        self, tenant: abc.Mapping[str, Any]
    ) -> tuple[dict[str, Any], frozenset[str]]:
        body: dict[str, Any] = {}
        synced = set()
        for item in self._client:
            value = _evaluate(item, tenant)
            if value is None:
                continue
            _put(body, item.target, value)
            if item.mode is Mode.SYNC:
                synced.add(item.target)
        return body, frozenset(synced)

    def _map_location(
        self, tenant: abc.Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
        if not self._has_location:
            return None, ()
        body = {item.target: _evaluate(item, tenant) for item in self._location}
        body = {target: value for target, value in body.items() if value is not None}
        missing = tuple(f for f in LOCATION_REQUIRED if body.get(f) in (None, ""))
        return (None if missing else body), missing


def _client_field(target: str, rule: Rule) -> _Field:
    return _Field(
        "client", target, rule, rule.on or Mode.SYNC, CLIENT_LIMITS.get(target)
    )


def _uses_tenant_id(rule: Rule) -> bool:
    if rule.from_ is not None:
        return rule.from_ == "id"
    return any(m.group(1) == "id" for m in PLACEHOLDER.finditer(rule.template or ""))


def _describe(item: _Field) -> dict[str, Any]:
    rule = item.rule
    source = {"from": rule.from_, "template": rule.template, "value": rule.value}
    return {
        "section": item.section,
        "target": item.target,
        "source": rule.kind,
        "expression": source[rule.kind],
        "transforms": [
            s.name if s.arg is None else {s.name: s.arg} for s in rule.transforms
        ],
        "on": item.mode.value if item.section == "client" else None,
    }


def _put(body: dict[str, Any], target: str, value: Any) -> None:
    head, _, rest = target.partition(".")
    if rest:
        body.setdefault(head, {})[rest] = value
    else:
        body[head] = value


def lookup(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data``; None when any step is missing."""
    for part in path.split("."):
        if isinstance(data, abc.Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def render(template: str, tenant: abc.Mapping[str, Any]) -> str | None:
    """Fill ``{dotted.path}`` placeholders; None when no placeholder has a value.

    Values are inserted as text by our own pattern, never through
    ``str.format``, so braces in tenant data cannot reach into Python objects.
    """
    seen = [0, 0]  # placeholders, placeholders with a value

    def fill(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)[0]
        seen[0] += 1
        value = _empty_as_none(lookup(tenant, match.group(1)))
        if value is None:
            return ""
        seen[1] += 1
        return _as_text(value)

    text = PLACEHOLDER.sub(fill, template)
    return None if seen[0] and not seen[1] else text


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _empty_as_none(value: Any) -> Any:
    # Acronis sends "" for unset text fields: that is no value, not a value.
    return None if value == "" else value


def _evaluate(item: _Field, tenant: abc.Mapping[str, Any]) -> Any:
    rule = item.rule
    if rule.from_ is not None:
        value = _empty_as_none(lookup(tenant, rule.from_))
    elif rule.template is not None:
        value = render(rule.template, tenant)
    else:
        value = copy.deepcopy(rule.value)
    for step in rule.transforms:
        try:
            value = _apply(step, value, item.limit)
        except ValueError as exc:
            raise MappingError(f"{item.section}.{item.target}: {exc}") from None
    return value


def _apply(step: Step, value: Any, limit: int | None) -> Any:
    if step.name == "default":
        return step.arg if value is None or value == "" else value
    if value is None:
        return None
    if step.name == "negate":
        if not isinstance(value, bool):
            raise ValueError(f"negate needs true or false, got {value!r}")
        return not value
    if not isinstance(value, str):
        return value
    if step.name == "trim":
        return value.strip() or None
    if step.name == "lower":
        return value.lower()
    if step.name == "upper":
        return value.upper()
    if step.name == "truncate":
        return truncate(value, step.arg or limit or len(value))
    return country_name(value)


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` UTF-16 code units, never inside a surrogate pair.

    AlgaPSA checks lengths in JavaScript, where an emoji counts twice. Blanks
    the cut leaves at the end are dropped, since the server trims them.
    """
    units = text.encode("utf-16-le")
    if len(units) <= 2 * limit:
        return text
    cut = units[: 2 * limit]
    if 0xD8 <= cut[-1] <= 0xDB:
        cut = cut[:-2]
    return cut.decode("utf-16-le").rstrip()


@functools.lru_cache(maxsize=1024)
def country_name(code: str) -> str | None:
    """The English name of an ISO 3166 country code (or name); None if unknown."""
    text = code.strip()
    if not text:
        return None
    try:
        country = pycountry.countries.lookup(text)
    except LookupError:
        return None
    return str(getattr(country, "common_name", None) or country.name)
