"""The fake Acronis Account Management API under ``/acronis/api/2``.

Client-credentials tokens that expire, the tenant listing with its selectors
and opaque cursors, one tenant, a tenant's children, and version-checked
updates. Errors use Acronis' shape, except the OAuth ones on ``/idp/token``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.data import CONTACT_FIELDS
from sandbox.state import (
    ACRONIS_CLIENT_ID,
    ACRONIS_CLIENT_SECRET,
    SandboxState,
    Tenant,
    current_state,
    iso_utc,
    parse_iso,
)

blueprint = Blueprint("acronis", __name__)

DEFAULT_LIMIT = 5000
MAX_UUIDS = 100
CHILDREN_PAGE = 500
SELECTORS = ("subtree_root_id", "uuids", "parent_id")
STAMP_KEYS = ("id", "parent_id", "version", "created_at", "updated_at", "deleted_at")
BASIC_KEYS = ("name", "kind", "enabled")
PUT_FIELDS = frozenset(
    {
        "name",
        "customer_type",
        "parent_id",
        "kind",
        "contact",
        "enabled",
        "customer_id",
        "version",
        "brand_id",
        "internal_tag",
        "language",
        "default_idp_id",
        "update_lock",
        "ancestral_access",
        "external_operation_status",
    }
)
# Fields a PUT may change in place; the rest of PUT_FIELDS are checked only.
CHANGEABLE = (
    "name",
    "customer_type",
    "enabled",
    "customer_id",
    "internal_tag",
    "language",
)


class AcronisProblem(Exception):
    """An Acronis error answer with its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = acronis_error(status, code, message)


def acronis_error(status: int, code: str, message: str) -> dict[str, Any]:
    details = {"info": None}
    error = {"code": code, "domain": "PlatformAccountServer", "message": message}
    return {"error": {**error, "details": details, "context": {}}}


@blueprint.errorhandler(AcronisProblem)
def answer_problem(problem: AcronisProblem) -> tuple[Response, int]:
    return jsonify(problem.body), problem.status


@blueprint.before_request
def require_token() -> None:
    """Every route but the token one needs a live bearer token."""
    if request.endpoint == "acronis.issue_token":
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not current_state().token_valid(token.strip()):
        raise AcronisProblem(
            401, "unauthorized", "Access token is missing, unknown or expired"
        )


@blueprint.post("/idp/token")
def issue_token() -> tuple[Response, int]:
    if request.form.get("grant_type") != "client_credentials":
        message = "grant_type must be client_credentials"
        return jsonify(error="invalid_request", error_description=message), 400
    auth = request.authorization
    if (
        auth is None
        or auth.type != "basic"
        or (auth.username, auth.password) != (ACRONIS_CLIENT_ID, ACRONIS_CLIENT_SECRET)
    ):
        message = "Client authentication failed"
        return jsonify(error="invalid_client", error_description=message), 401
    state = current_state()
    token = secrets.token_urlsafe(32)
    expires = state.issue_token(token)
    return jsonify(
        access_token=token,
        token_type="bearer",
        expires_in=state.options.token_ttl,
        expires_on=int(expires),
        id_token=fake_id_token(expires),
    ), 200


def fake_id_token(expires: float) -> str:
    """A JWT-shaped string; nobody checks its signature in the sandbox."""
    parts = [
        {"alg": "none", "typ": "JWT"},
        {"sub": ACRONIS_CLIENT_ID, "exp": int(expires)},
    ]
    encoded = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode() for part in parts
    ]
    return ".".join([*encoded, "sandbox"])


def render_contact(contact: dict[str, Any] | None, tenant: Tenant) -> dict[str, Any]:
    """A contact with its stamps, or the empty contact of a tenant without one.

    Even an empty contact has an id and stamps: the schema requires them.
    """
    stamp = iso_utc(tenant["_created_us"], digits=0)
    if contact is None:
        blank: dict[str, Any] = dict.fromkeys(CONTACT_FIELDS)
        contact_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"contact:{tenant['id']}"))
        contact = {**blank, "id": contact_id, "types": [], "email": ""}
    return {**contact, "created_at": stamp, "updated_at": stamp}


def render(
    tenant: Tenant, *, lod: str = "full", contacts: bool = True
) -> dict[str, Any]:
    """A tenant as the API shows it at level of detail ``lod``."""
    deleted = tenant["_deleted_us"]
    shown = {key: value for key, value in tenant.items() if not key.startswith("_")}
    shown["created_at"] = iso_utc(tenant["_created_us"], digits=0)
    shown["updated_at"] = iso_utc(tenant["_updated_us"])
    shown["deleted_at"] = (
        None if deleted is None else iso_utc(deleted, zone="Z", digits=0)
    )
    listed = tenant["_contacts"]
    shown["contact"] = render_contact(listed[0] if listed else None, tenant)
    shown["contacts"] = [render_contact(c, tenant) for c in listed] if contacts else []
    if lod == "full":
        return shown
    keys: tuple[str, ...] = (*STAMP_KEYS, "contacts", "offering_items")
    keys += BASIC_KEYS if lod == "basic" else ()
    return {key: shown[key] for key in keys}


def bad_request(message: str) -> AcronisProblem:
    return AcronisProblem(400, "invalid_argument", message)


def flag(args: Any, name: str) -> bool:
    value = str(args.get(name, "false")).lower()
    if value not in ("true", "false", "1", "0"):
        raise bad_request(f"{name} must be true or false")
    return value in ("true", "1")


def read_query(args: Any) -> dict[str, Any]:
    """The listing arguments, from a cursor when ``after`` is given."""
    if "after" in args:
        return decode_cursor(args["after"])
    chosen = [name for name in SELECTORS if name in args]
    if len(chosen) != 1:
        raise bad_request(
            "Exactly one of subtree_root_id, uuids, parent_id is required"
        )
    since = args.get("updated_since")
    since_us = None if since is None else parse_iso(since)
    if since is not None and since_us is None:
        raise bad_request("updated_since must be an RFC 3339 date and time")
    lod = args.get("lod", "full")
    if lod not in ("stamps", "basic", "full"):
        raise bad_request("lod must be one of stamps, basic, full")
    return {
        "selector": chosen[0],
        "value": args[chosen[0]],
        "lod": lod,
        "with_contacts": flag(args, "with_contacts"),
        "allow_deleted": flag(args, "allow_deleted"),
        "since": since_us,
        "limit": read_limit(args.get("limit")),
        "after": None,
    }


def read_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or int(raw) < 1:
        raise bad_request("limit must be a whole number of at least 1")
    return int(raw)


def encode_cursor(query: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(query).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        query: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_request("The paging cursor is not valid") from None
    if not isinstance(query, dict) or query.get("selector") not in SELECTORS:
        raise bad_request("The paging cursor is not valid")
    return query


def candidates(state: SandboxState, query: dict[str, Any]) -> list[str]:
    """Tenant ids a selector names, by level, then creation."""
    selector, value = query["selector"], query["value"]
    if selector == "uuids":
        wanted = [part.strip() for part in value.split(",") if part.strip()]
        if len(wanted) > MAX_UUIDS:
            raise bad_request(f"uuids accepts at most {MAX_UUIDS} ids")
        return sorted({i for i in wanted if i in state.tenants}, key=state.order_key)
    if value not in state.tenants:
        raise AcronisProblem(404, "not_found", f"Tenant {value} was not found")
    if selector == "parent_id":
        return sorted(state.children[value], key=state.order_key)
    return state.subtree(value)


def visible(tenant: Tenant, query: dict[str, Any]) -> bool:
    if tenant["_deleted_us"] is not None and not query["allow_deleted"]:
        return False
    since = query["since"]
    return since is None or tenant["_updated_us"] > since


@blueprint.get("/tenants")
def list_tenants() -> Response:
    state = current_state()
    query = read_query(request.args)
    after = tuple(query["after"]) if query["after"] else None
    with state.lock:
        timestamp = iso_utc(state.tick(), zone="Z")
        page: list[Tenant] = []
        more = False
        for tenant_id in candidates(state, query):
            tenant = state.tenants[tenant_id]
            if (after and state.order_key(tenant_id) <= after) or not visible(
                tenant, query
            ):
                continue
            if len(page) == query["limit"]:
                more = True
                break
            page.append(tenant)
        items = [
            render(t, lod=query["lod"], contacts=query["with_contacts"]) for t in page
        ]
        paging: dict[str, Any] = {"cursors": {}}
        if more:
            next_query = {**query, "after": list(state.order_key(page[-1]["id"]))}
            paging["cursors"]["after"] = encode_cursor(next_query)
    return jsonify(timestamp=timestamp, items=items, paging=paging)


def find_tenant(
    state: SandboxState, tenant_id: str, *, deleted: bool = False
) -> Tenant:
    tenant = state.tenants.get(tenant_id)
    if tenant is None or (tenant["_deleted_us"] is not None and not deleted):
        raise AcronisProblem(404, "not_found", f"Tenant {tenant_id} was not found")
    return tenant


@blueprint.get("/tenants/<tenant_id>")
def get_tenant(tenant_id: str) -> Response:
    state = current_state()
    with state.lock:
        tenant = find_tenant(
            state, tenant_id, deleted=flag(request.args, "allow_deleted")
        )
        return jsonify(render(tenant))


@blueprint.get("/tenants/<tenant_id>/children")
def list_children(tenant_id: str) -> Response:
    state = current_state()
    deleted = flag(request.args, "allow_deleted")
    after = request.args.get("after", "0")
    if not after.isdigit():
        raise bad_request("The paging cursor is not valid")
    start = int(after)
    with state.lock:
        find_tenant(state, tenant_id, deleted=True)
        ids = sorted(state.children[tenant_id], key=state.order_key)
        ids = [i for i in ids if deleted or state.tenants[i]["_deleted_us"] is None]
    body: dict[str, Any] = {"items": ids[start : start + CHILDREN_PAGE]}
    if start + CHILDREN_PAGE < len(ids):
        body["paging"] = {"cursors": {"after": str(start + CHILDREN_PAGE)}}
    return jsonify(body)


@blueprint.put("/tenants/<tenant_id>")
def update_tenant(tenant_id: str) -> Response:
    if not request.is_json:
        raise AcronisProblem(
            415, "unsupported_media_type", "Send the body as application/json"
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    unknown = sorted(set(body) - PUT_FIELDS)
    if unknown:
        raise bad_request(f"Unknown fields: {', '.join(unknown)}")
    if not isinstance(body.get("version"), int):
        raise bad_request("version is required and must be an integer")
    state = current_state()
    with state.lock:
        tenant = find_tenant(state, tenant_id)
        if body["version"] != tenant["version"]:
            current = tenant["version"]
            message = f"Version {body['version']} is stale; the tenant is at {current}"
            raise AcronisProblem(409, "conflict", message)
        if body.get("parent_id", tenant["parent_id"]) != tenant["parent_id"]:
            raise bad_request("The sandbox cannot move tenants to another parent")
        change_tenant(state, tenant, body)
        return jsonify(render(tenant))


def change_tenant(state: SandboxState, tenant: Tenant, fields: dict[str, Any]) -> None:
    """Merge ``fields`` into ``tenant`` and record the change."""
    for name in CHANGEABLE:
        if name in fields:
            tenant[name] = fields[name]
    if isinstance(fields.get("contact"), dict):
        merge_contact(state, tenant, fields["contact"])
    state.touch_tenant(tenant)


def merge_contact(state: SandboxState, tenant: Tenant, fields: dict[str, Any]) -> None:
    """Merge ``fields`` into the tenant's first contact, making one if needed."""
    contacts = tenant["_contacts"]
    if not contacts:
        blank = dict.fromkeys(CONTACT_FIELDS)
        contacts.append(
            {
                **blank,
                "id": state.new_uuid(),
                "tenant_id": tenant["id"],
                "user_id": None,
                "types": ["legal", "primary", "billing"],
                "email": "",
            }
        )
    known = {key: value for key, value in fields.items() if key in contacts[0]}
    contacts[0].update(known)
