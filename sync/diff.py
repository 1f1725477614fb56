"""What differs between a mapped client and the client AlgaPSA has.

Only fields kept in step are compared. Text that AlgaPSA treats as equal is
equal here too (blank and missing, names with blanks at the ends, 1 and 1.0),
and the key field keeps every line a person wrote, with the marker on a line
of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sync.mapping import MappedTenant


@dataclasses.dataclass(frozen=True)
class FieldChange:
    """One dotted client field whose AlgaPSA value differs from the mapped one."""

    field: str
    old: Any
    new: Any


def _read(body: Mapping[str, Any], target: str) -> Any:
    head, _, rest = target.partition(".")
    value = body.get(head)
    if not rest:
        return value
    return value.get(rest) if isinstance(value, Mapping) else None


def _same(old: Any, new: Any, target: str) -> bool:
    if old in (None, "") and new in (None, ""):
        return True
    if target == "client_name" and isinstance(old, str) and isinstance(new, str):
        # The server trims names, so blanks at the ends are never a change.
        return old.strip() == new.strip()
    if _is_number(old) and _is_number(new):
        return bool(old == new)
    return bool(old == new and type(old) is type(new))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def field_changes(
    mapped: MappedTenant, client: Mapping[str, Any], key_field: str
) -> list[FieldChange]:
    found = []
    for target in sorted(mapped.sync_fields):
        old, new = _read(client, target), _read(mapped.client, target)
        if target == key_field:
            new = _with_marker(old, new, mapped.tenant_id)
        if not _same(old, new, target):
            found.append(FieldChange(target, old, new))
    return found


def _with_marker(old: Any, marker: Any, tenant_id: str) -> Any:
    """Key-field text that carries ``marker`` on a line and every line a person wrote.

    Text that already holds ``marker`` stays as it is; lines that mention the
    tenant id are an earlier marker and make way for the new one.
    """
    if not isinstance(marker, str):
        return marker
    text = old if isinstance(old, str) else ""
    if marker in text:
        return old
    tenant = tenant_id.lower()
    kept = [line for line in text.splitlines() if tenant not in line.lower()]
    while kept and not kept[-1].strip():
        kept.pop()  # blank lines at the end would leave a gap before the marker
    return "\n".join([*kept, marker])


def put_body(
    changes: Sequence[FieldChange], client: Mapping[str, Any]
) -> dict[str, Any]:
    """The PUT body: changed fields only, but ``properties`` whole and merged."""
    body: dict[str, Any] = {}
    for change in changes:
        head, _, rest = change.field.partition(".")
        if not rest:
            body[head] = change.new
            continue
        if head not in body:
            existing = client.get(head)
            body[head] = dict(existing) if isinstance(existing, Mapping) else {}
        body[head][rest] = change.new
    return body
