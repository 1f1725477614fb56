"""How an Acronis tenant becomes an AlgaPSA client body and location body.

``mapping.yaml`` holds one rule per client field and per location field. A
rule takes its value ``from`` a dotted path into the tenant, from a
``template`` with ``{dotted.path}`` placeholders, or from a constant
``value``; then applies its ``transforms`` in order. Client rules say ``on``
which occasion they are written: ``create`` only, or every ``sync``.

Loading checks the whole file and names the line of every problem; mapping a
tenant is a pure function of the tenant.
"""

from __future__ import annotations

import copy
import functools
import re
from collections import abc
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pycountry
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sync.errors import MappingError

PATH_PATTERN = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")

# Lengths AlgaPSA enforces; its validator counts UTF-16 code units.
CLIENT_LIMITS = {"client_name": 255, "default_currency_code": 3}
LOCATION_LIMITS = {"country_code": 3}

CLIENT_FIELDS = frozenset(
    {
        "client_name", "url", "notes", "client_type", "tax_id_number",
        "billing_cycle", "payment_terms", "credit_limit", "default_currency_code",
        "preferred_payment_method", "auto_invoice", "invoice_delivery_method",
        "region_code", "is_tax_exempt", "tax_exemption_certificate", "timezone",
        "invoice_template_id", "billing_contact_id", "billing_email",
        "account_manager_id", "is_inactive",
    }
)  # fmt: skip
# AlgaPSA silently removes any other key from ``properties``.
PROPERTY_KEYS = frozenset(
    {
        "industry", "company_size", "annual_revenue", "primary_contact_id",
        "primary_contact_name", "account_manager_id", "account_manager_name",
        "status", "type", "billing_address", "tax_id", "notes", "payment_terms",
        "website", "parent_client_id", "parent_client_name", "last_contact_date",
        "logo", "timezone",
    }
)  # fmt: skip
DROPPED_CLIENT_FIELDS = {
    "email": "is not a client field in AlgaPSA: map it on the location",
    "phone_no": "is not a client field in AlgaPSA: map location.phone instead",
    "address": "is not a client field in AlgaPSA: map the location's address lines",
    "tags": "is never returned by AlgaPSA's client API, so it cannot be kept in step",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "billing_cycle": (
        "weekly", "bi-weekly", "monthly", "quarterly", "semi-annually", "annually",
    ),
    "client_type": ("company", "individual"),
    "invoice_delivery_method": ("email", "mail", "portal"),
}  # fmt: skip
LOCATION_REQUIRED = ("address_line1", "city", "country_code", "country_name")
LOCATION_FIELDS = frozenset(
    {
        *LOCATION_REQUIRED, "location_name", "address_line2", "address_line3",
        "state_province", "postal_code", "region_code", "phone", "email", "fax",
        "is_default", "is_billing_address", "is_shipping_address", "notes",
        "is_active",
    }
)  # fmt: skip
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
                "name the tenant in Acronis or map client_name from another field",
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


def load_mapping(path: Path) -> Mapping:
    """Read and check the mapping file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"cannot read {path}: {exc.strerror}: check MAPPING_FILE"
        raise MappingError(problem) from None
    return parse_mapping(text, source=path.name)


def parse_mapping(text: str, source: str = "mapping.yaml") -> Mapping:
    """Check mapping ``text``; a MappingError gives "source line N: problem" lines."""
    data, lines = _compose(text, source)
    problems: list[tuple[int, str]] = []
    parsed: MappingFile | None = None
    try:
        parsed = MappingFile.model_validate(data)
    except ValidationError as exc:
        problems += [_locate(e["loc"], _explain(e), lines) for e in exc.errors()]
    if isinstance(data, dict):
        problems += _check_targets(data, lines)
    if problems or parsed is None:
        found = sorted(set(problems))
        raise MappingError("\n".join(f"{source} line {n}: {p}" for n, p in found))
    return Mapping(parsed, source)


Lines = dict[tuple[Any, ...], int]
BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (true, false only), so the key ``on`` stays a word."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _compose(text: str, source: str) -> tuple[Any, Lines]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise MappingError(
            f"{source} line {line}: not valid YAML: {exc.problem}"
        ) from None
    finally:
        loader.dispose()
    if node is None:
        raise MappingError(
            f"{source} line 1: the file is empty: it needs a client section"
        )
    lines: Lines = {(): node.start_mark.line + 1}
    duplicates = _index(node, (), lines)
    if duplicates:
        raise MappingError("\n".join(f"{source} line {n}: {p}" for n, p in duplicates))
    return data, lines


def _index(
    node: yaml.Node, path: tuple[Any, ...], lines: Lines
) -> list[tuple[int, str]]:
    """Record the line of every key and item; report keys written twice."""
    problems: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        children = [((*path, key.value), key, value) for key, value in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [((*path, i), item, item) for i, item in enumerate(node.value)]
    else:
        return problems
    for child_path, marker, child in children:
        line = marker.start_mark.line + 1
        if child_path in lines and isinstance(node, yaml.MappingNode):
            problems.append((line, f"{_where(child_path)}: is written twice"))
            continue
        lines[child_path] = line
        problems += _index(child, child_path, lines)
    return problems


def _where(loc: abc.Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _locate(loc: abc.Sequence[Any], problem: str, lines: Lines) -> tuple[int, str]:
    path = tuple(loc)
    while path not in lines:
        path = path[:-1]
    return lines[path], f"{_where(path)}: {problem}" if path else problem


_TOP_LEVEL = "expected a map with a client section and a location section"


def _explain(error: abc.Mapping[str, Any]) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        allowed = (
            "client and location"
            if len(loc) == 1
            else "from, template, value, transforms, on"
        )
        return f"unknown key {loc[-1]!r}: use {allowed}"
    if error["type"] == "missing":
        return "the file needs a client section"
    if error["type"] == "enum":
        return "on must be create or sync"
    if error["type"] == "model_type":
        return "expected a map such as {from: name}" if loc else _TOP_LEVEL
    if error["type"] == "tuple_type":
        return "expected a list, such as [trim]"
    return str(error["msg"]).removeprefix("Value error, ")


def _check_targets(data: dict[str, Any], lines: Lines) -> list[tuple[int, str]]:
    """Problems that depend on the target: unknown fields, limits, constants."""
    problems: list[tuple[int, str]] = []
    client = data.get("client")
    if isinstance(client, dict):
        for target, rule in client.items():
            problem = _client_problem(str(target), rule)
            if problem:
                problems.append(_locate(("client", target), problem, lines))
        for required in ("client_name", "billing_cycle"):
            if required not in client:
                problems.append(
                    _locate(
                        ("client",), f"{required} is missing: AlgaPSA needs it", lines
                    )
                )
    location = data.get("location")
    if isinstance(location, dict):
        for target, rule in location.items():
            problem = _location_problem(str(target), rule)
            if problem:
                problems.append(_locate(("location", target), problem, lines))
    return problems


def _client_problem(target: str, rule: Any) -> str | None:
    head, _, rest = target.partition(".")
    if target in DROPPED_CLIENT_FIELDS:
        return DROPPED_CLIENT_FIELDS[target]
    if head == "properties" and rest not in PROPERTY_KEYS:
        known = ", ".join(sorted(PROPERTY_KEYS))
        return f"AlgaPSA drops unknown properties; use one of {known}"
    if head != "properties" and target not in CLIENT_FIELDS:
        return f"{target!r} is not a client field AlgaPSA accepts"
    if not isinstance(rule, dict):
        return None
    return _truncate_problem(target, rule, CLIENT_LIMITS) or _choice_problem(
        target, rule
    )


def _location_problem(target: str, rule: Any) -> str | None:
    if target not in LOCATION_FIELDS:
        known = ", ".join(sorted(LOCATION_FIELDS))
        return f"{target!r} is not a location field; use one of {known}"
    if isinstance(rule, dict) and "on" in rule:
        return "on does not apply to location fields: a location is written once"
    return (
        _truncate_problem(target, rule, LOCATION_LIMITS)
        if isinstance(rule, dict)
        else None
    )


def _truncate_problem(
    target: str, rule: dict[str, Any], limits: dict[str, int]
) -> str | None:
    steps = rule.get("transforms")
    if target in limits or not isinstance(steps, list) or "truncate" not in steps:
        return None
    return f"AlgaPSA sets no length for {target}: write {{truncate: N}}"


def _choice_problem(target: str, rule: dict[str, Any]) -> str | None:
    choices = CHOICES.get(target)
    if choices is None or "value" not in rule or rule["value"] in choices:
        return None
    return f"{rule['value']!r} is not a {target}; use one of {', '.join(choices)}"
