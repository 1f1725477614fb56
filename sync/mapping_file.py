"""Reading ``mapping.yaml`` and checking it against what AlgaPSA accepts.

Every problem is reported with the line it is on, all at once, so a person
fixes the file in one pass: unknown keys and transforms, rules with no or two
sources, client fields AlgaPSA does not have or silently drops, constants it
refuses, and lengths it does not limit.
"""

from __future__ import annotations

import re
from collections import abc
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sync.errors import MappingError
from sync.mapping import (
    CLIENT_LIMITS,
    LOCATION_LIMITS,
    LOCATION_REQUIRED,
    Mapping,
    MappingFile,
)

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
LOCATION_FIELDS = frozenset(
    {
        *LOCATION_REQUIRED, "location_name", "address_line2", "address_line3",
        "state_province", "postal_code", "region_code", "phone", "email", "fax",
        "is_default", "is_billing_address", "is_shipping_address", "notes",
        "is_active",
    }
)  # fmt: skip


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
