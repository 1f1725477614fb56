"""Decide, for every tenant, what to do with its AlgaPSA client.

The planner is pure: it takes the tenants, both sides' current data and the
mapping, and returns one :class:`Plan` per tenant. It finds each tenant's
client by the stored link, then by the tenant id written in the client's key
field (the marker), then by exact name; compares only the fields kept in step;
and applies the policies for disabled and deleted tenants. Tenants an admin
excluded are skipped, and in link-only mode no client is created: such a
tenant is skipped until a person has reviewed it. The key field's text
is never replaced: the lines a person wrote there stay, and only the line that
carries the marker is written.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from sync.diff import FieldChange, field_changes, put_body
from sync.errors import MappingError
from sync.mapping import MappedTenant
from sync.mapping import Mapping as FieldMapping
from sync.settings import DEFAULT_KEY_FIELD, TenantPolicy

UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
EXCLUDED = "excluded by an admin"
LINK_ONLY = "link-only mode: review it with `python -m sync suggest`"


class Action(StrEnum):
    """What the engine should do for one tenant."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    SKIP = "skip"
    CONFLICT = "conflict"
    INVALID = "invalid"


class LinkSource(StrEnum):
    """How a tenant's client was found."""

    STORE = "store"
    MARKER = "marker"
    NAME = "name"


@dataclasses.dataclass(frozen=True)
class Plan:
    """The decision for one tenant, with everything the engine needs to act."""

    tenant_id: str
    tenant_name: str
    action: Action
    reason: str
    client_id: str | None = None
    body: dict[str, Any] = dataclasses.field(default_factory=dict)
    changes: tuple[FieldChange, ...] = ()
    location: dict[str, Any] | None = None
    link: LinkSource | None = None
    fingerprint: str = ""

    @property
    def recovers_link(self) -> bool:
        """Whether the client was found anew (marker or name): a link to record."""
        return self.link in (LinkSource.MARKER, LinkSource.NAME)


@dataclasses.dataclass(frozen=True)
class PlanContext:
    """What the planner knows about AlgaPSA and the link store."""

    clients: Mapping[str, Mapping[str, Any]]
    links: Mapping[str, str]
    key_field: str = DEFAULT_KEY_FIELD
    disabled_policy: TenantPolicy = TenantPolicy.DEACTIVATE
    deleted_policy: TenantPolicy = TenantPolicy.DEACTIVATE
    excluded: frozenset[str] = frozenset()
    link_only: bool = False
    # Tenants whose client a person linked by hand, under a name of their own.
    own_names: frozenset[str] = frozenset()


def fingerprint(mapped: MappedTenant) -> str:
    """A sha256 of the mapped client and location, stable across key order."""
    canonical = json.dumps(
        {"client": mapped.client, "location": mapped.location},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def plan_all(
    tenants: Sequence[Mapping[str, Any]], mapping: FieldMapping, ctx: PlanContext
) -> list[Plan]:
    """One plan per tenant, in input order; a tenant's failure never stops others."""
    planner = _Planner(tenants, ctx)
    return [planner.plan(tenant, mapping) for tenant in tenants]


@dataclasses.dataclass
class _Found:
    client_id: str | None
    link: LinkSource | None
    note: str = ""


class _Conflict(Exception):
    def __init__(self, reason: str, client_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.client_id = client_id


class _Planner:
    """Indexes built once per pass, and the claims made during it."""

    def __init__(self, tenants: Sequence[Mapping[str, Any]], ctx: PlanContext):
        self.ctx = ctx
        self.by_marker: dict[str, list[str]] = {}
        self.markers: dict[str, frozenset[str]] = {}
        self.by_name: dict[str, list[str]] = {}
        for client_id, client in ctx.clients.items():
            self._index_client(client_id, client)
        self.linked_to = {client: tenant for tenant, client in ctx.links.items()}
        self.known_tenants = {str(t.get("id", "")).lower() for t in tenants}
        self.known_tenants.update(tenant.lower() for tenant in ctx.links)
        self.claims: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def _index_client(self, client_id: str, client: Mapping[str, Any]) -> None:
        text = client.get(self.ctx.key_field)
        found = frozenset(m.lower() for m in UUID.findall(text)) if text else None
        if found and isinstance(text, str):
            self.markers[client_id] = found
            for marker in found:
                self.by_marker.setdefault(marker, []).append(client_id)
        name = client.get("client_name")
        if isinstance(name, str):
            self.by_name.setdefault(name.strip(), []).append(client_id)

    def plan(self, tenant: Mapping[str, Any], mapping: FieldMapping) -> Plan:
        tenant_id = str(tenant.get("id") or "")
        name = str(tenant.get("name") or "")
        if not tenant_id:
            return Plan("", name, Action.INVALID, "the tenant has no id")
        if tenant.get("kind") != "customer":
            reason = f"not a customer tenant (kind={tenant.get('kind')})"
            return Plan(tenant_id, name, Action.SKIP, reason)
        if tenant_id.lower() in self.ctx.excluded:
            return Plan(tenant_id, name, Action.SKIP, EXCLUDED)
        skip = self._policy_skip(tenant)
        if skip:
            return Plan(tenant_id, name, Action.SKIP, skip)
        try:
            mapped = mapping.map_tenant(tenant)
        except MappingError as exc:
            return Plan(tenant_id, name, Action.INVALID, exc.message)
        try:
            return self._decide(tenant, name, mapped)
        except _Conflict as conflict:
            return Plan(
                tenant_id,
                name,
                Action.CONFLICT,
                conflict.reason,
                client_id=conflict.client_id,
                location=mapped.location,
                fingerprint=fingerprint(mapped),
            )

    def _policy_skip(self, tenant: Mapping[str, Any]) -> str | None:
        if tenant.get("deleted_at") and self.ctx.deleted_policy is TenantPolicy.IGNORE:
            return "deleted in Acronis, and deleted tenants are ignored"
        disabled = tenant.get("enabled") is False and not tenant.get("deleted_at")
        if disabled and self.ctx.disabled_policy is TenantPolicy.IGNORE:
            return "disabled in Acronis, and disabled tenants are ignored"
        return None

    def _decide(
        self, tenant: Mapping[str, Any], name: str, mapped: MappedTenant
    ) -> Plan:
        if tenant.get("deleted_at"):
            # Never by name: that could deactivate a client a person made.
            return self._deactivate(name, mapped, self._find(mapped, by_name=False))
        found = self._find(mapped)
        if tenant.get("enabled") is False:
            skip = self._disabled_skip(found)
            if skip is not None:
                return Plan(mapped.tenant_id, name, Action.SKIP, skip)
            mapped = _forced_inactive(mapped)
        if found.client_id is None:
            return self._create(name, mapped, found)
        return self._compare(name, mapped, found)

    def _disabled_skip(self, found: _Found) -> str | None:
        """Why a disabled tenant's client is left alone; None to deactivate it."""
        if found.client_id is None:
            return found.note + "disabled in Acronis and not in AlgaPSA"
        if found.link is not LinkSource.NAME:
            return None
        # Only the name ties them, so the client is a person's own: let it go.
        self.claims.pop(found.client_id, None)
        return found.note + (
            "disabled in Acronis; the AlgaPSA client of the same name was made "
            "by hand, so it is left alone"
        )

    def _find(self, mapped: MappedTenant, by_name: bool = True) -> _Found:
        tenant_id = mapped.tenant_id
        note = ""
        linked = self.ctx.links.get(tenant_id)
        if linked is not None and linked in self.ctx.clients:
            return self._claim(tenant_id, linked, LinkSource.STORE)
        if linked is not None:
            note = f"the linked client {linked} no longer exists in AlgaPSA; "
        by_marker = self.by_marker.get(tenant_id.lower(), [])
        if len(by_marker) > 1:
            raise _Conflict(
                f"{note}clients {', '.join(by_marker)} all carry this tenant's id "
                f"in {self.ctx.key_field}: remove it from all but one"
            )
        if by_marker:
            return self._claim(tenant_id, by_marker[0], LinkSource.MARKER, note)
        if not by_name:
            return _Found(None, None, note)
        return self._find_by_name(mapped, note)

    def _find_by_name(self, mapped: MappedTenant, note: str) -> _Found:
        name = str(mapped.client["client_name"]).strip()
        for client_id in self.by_name.get(name, []):
            other = self._owner(client_id, mapped.tenant_id)
            if other is not None:
                raise _Conflict(
                    f"{note}AlgaPSA client {client_id} named {name!r} belongs to "
                    f"tenant {other}, not to tenant {mapped.tenant_id}",
                    client_id,
                )
            return self._claim(mapped.tenant_id, client_id, LinkSource.NAME, note)
        return _Found(None, None, note)

    def _owner(self, client_id: str, tenant_id: str) -> str | None:
        """Another tenant that holds the client by link, claim or marker."""
        for owner in (self.linked_to.get(client_id), self.claims.get(client_id)):
            if owner is not None and owner != tenant_id:
                return owner
        # Its own marker would have found the client already, before the name.
        others = self.markers.get(client_id, frozenset()) & self.known_tenants
        return min(others) if others else None

    def _claim(
        self, tenant_id: str, client_id: str, link: LinkSource, note: str = ""
    ) -> _Found:
        for owner in (self.linked_to.get(client_id), self.claims.get(client_id)):
            if owner is not None and owner != tenant_id:
                raise _Conflict(
                    f"{note}AlgaPSA client {client_id} is already linked to tenant "
                    f"{owner}, so tenant {tenant_id} cannot take it",
                    client_id,
                )
        self.claims[client_id] = tenant_id
        return _Found(client_id, link, note)

    def _deactivate(self, name: str, mapped: MappedTenant, found: _Found) -> Plan:
        tenant_id = mapped.tenant_id
        if found.client_id is None:
            reason = found.note + "deleted in Acronis and not in AlgaPSA"
            return Plan(tenant_id, name, Action.SKIP, reason)
        client = self.ctx.clients[found.client_id]
        common: dict[str, Any] = {
            "client_id": found.client_id,
            "location": mapped.location,
            "link": found.link,
            "fingerprint": fingerprint(mapped),
        }
        if client.get("is_inactive") is True:
            reason = found.note + "deleted in Acronis; the client is already inactive"
            return Plan(tenant_id, name, Action.UNCHANGED, reason, **common)
        change = FieldChange("is_inactive", client.get("is_inactive"), True)
        reason = found.note + "deleted in Acronis: deactivate the client"
        return Plan(
            tenant_id,
            name,
            Action.UPDATE,
            reason,
            body={"is_inactive": True},
            changes=(change,),
            **common,
        )

    def _create(self, name: str, mapped: MappedTenant, found: _Found) -> Plan:
        if self.ctx.link_only:
            return Plan(mapped.tenant_id, name, Action.SKIP, found.note + LINK_ONLY)
        client_name = str(mapped.client["client_name"]).strip()
        taken_by = self.names.get(client_name)
        if taken_by is not None and taken_by != mapped.tenant_id:
            raise _Conflict(
                f"{found.note}another tenant, {taken_by}, already takes the name "
                f"{client_name!r} in AlgaPSA; rename one of them in Acronis"
            )
        self.names[client_name] = mapped.tenant_id
        return Plan(
            mapped.tenant_id,
            name,
            Action.CREATE,
            found.note + "no AlgaPSA client found: create one",
            body=copy.deepcopy(mapped.client),
            location=mapped.location,
            fingerprint=fingerprint(mapped),
        )

    def _compare(self, name: str, mapped: MappedTenant, found: _Found) -> Plan:
        assert found.client_id is not None
        client = self.ctx.clients[found.client_id]
        if mapped.tenant_id in self.ctx.own_names:
            mapped = _named_as(mapped, client)
        changes = tuple(field_changes(mapped, client, self.ctx.key_field))
        new_name = str(mapped.client["client_name"]).strip()
        self._check_rename(changes, new_name, found.client_id, mapped.tenant_id)
        self.names.setdefault(new_name, mapped.tenant_id)
        how = _HOW_FOUND[found.link] if found.link else ""
        common: dict[str, Any] = {
            "client_id": found.client_id,
            "location": mapped.location,
            "link": found.link,
            "fingerprint": fingerprint(mapped),
        }
        if not changes:
            reason = f"{found.note}{how}AlgaPSA client is up to date"
            return Plan(mapped.tenant_id, name, Action.UNCHANGED, reason, **common)
        fields = ", ".join(change.field for change in changes)
        verb = "differs" if len(changes) == 1 else "differ"
        reason = f"{found.note}{how}{fields} {verb} from Acronis"
        body = put_body(changes, client)
        return Plan(
            mapped.tenant_id, name, Action.UPDATE, reason, body=body,
            changes=changes, **common,
        )  # fmt: skip

    def _check_rename(
        self,
        changes: Sequence[FieldChange],
        new_name: str,
        client_id: str,
        tenant_id: str,
    ) -> None:
        """Refuse a rename onto a name another client has or will have."""
        if not any(change.field == "client_name" for change in changes):
            return
        holders = [c for c in self.by_name.get(new_name, []) if c != client_id]
        if holders:
            raise _Conflict(
                f"renaming client {client_id} to {new_name!r} would clash with "
                f"AlgaPSA client {holders[0]}, which already has that name",
                client_id,
            )
        taken_by = self.names.get(new_name)
        if taken_by is not None and taken_by != tenant_id:
            raise _Conflict(
                f"another tenant, {taken_by}, already takes the name {new_name!r} "
                f"in AlgaPSA; rename one of them in Acronis",
                client_id,
            )


_HOW_FOUND = {
    LinkSource.STORE: "",
    LinkSource.MARKER: "found by the tenant id in the client; ",
    LinkSource.NAME: "found by exact name; ",
}


def _forced_inactive(mapped: MappedTenant) -> MappedTenant:
    client = {**mapped.client, "is_inactive": True}
    fields = mapped.sync_fields | {"is_inactive"}
    return dataclasses.replace(mapped, client=client, sync_fields=fields)


def _named_as(mapped: MappedTenant, client: Mapping[str, Any]) -> MappedTenant:
    """``mapped`` under the client's own name, so that no rename is planned."""
    if not isinstance(client.get("client_name"), str):
        return mapped
    renamed = {**mapped.client, "client_name": client["client_name"]}
    return dataclasses.replace(mapped, client=renamed)
