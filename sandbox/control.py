"""Control routes under ``/_sandbox``: look inside, change data, break things.

They need no credentials, wait for no latency and are not counted, so a
test or a demo can set a scene and read the call counts without disturbing
them. They answer bare objects and lists, not the remotes' envelopes.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox import alga_store
from sandbox.acronis import (
    AcronisProblem,
    acronis_error,
    bad_request,
    change_tenant,
    find_tenant,
    merge_contact,
    render,
)
from sandbox.alga_store import AlgaProblem
from sandbox.data import new_tenant
from sandbox.state import Fault, current_state

blueprint = Blueprint("control", __name__)

KNOBS: dict[str, type | tuple[type, ...]] = {
    "latency_ms": (int, float),
    "fail_rate": (int, float),
    "enforce_rate_limit": bool,
}
# Tenant keys a PATCH must not touch: identity and position in the tree.
FIXED_KEYS = frozenset({"id", "version", "parent_id", "kind", "has_children"})


@blueprint.errorhandler(AlgaProblem)
@blueprint.errorhandler(AcronisProblem)
def answer_problem(problem: AlgaProblem | AcronisProblem) -> tuple[Response, int]:
    return jsonify(problem.body), problem.status


def body() -> dict[str, Any]:
    sent = request.get_json(force=True, silent=True)
    return sent if isinstance(sent, dict) else {}


@blueprint.get("/info")
def info() -> Response:
    state = current_state()
    with state.lock:
        options = vars(state.options).copy()
    return jsonify(acronis_tenant_id=state.root_id, options=options)


@blueprint.get("/stats")
def stats() -> Response:
    state = current_state()
    with state.lock:
        return jsonify(state.stats.snapshot())


@blueprint.post("/stats/reset")
def reset_stats() -> Response:
    state = current_state()
    with state.lock:
        state.stats.reset()
        return jsonify(state.stats.snapshot())


@blueprint.get("/acronis/tenants")
def all_tenants() -> Response:
    state = current_state()
    with state.lock:
        ordered = sorted(state.tenants, key=state.order_key)
        return jsonify([render(state.tenants[i]) for i in ordered])


@blueprint.post("/acronis/tenants")
def add_tenant() -> tuple[Response, int]:
    """Create a tenant (a customer under the partner root unless told otherwise)."""
    fields = body()
    state = current_state()
    if not isinstance(fields.get("name"), str) or not fields["name"]:
        raise bad_request("name is required")
    with state.lock:
        parent_id = fields.get("parent_id", state.root_id)
        find_tenant(state, parent_id)
        now = state.tick()
        kind = fields.get("kind", "customer")
        tenant = new_tenant(state.new_uuid(), parent_id, kind, fields["name"], now)
        state.add_tenant(tenant)
        patch_fields(tenant, {k: v for k, v in fields.items() if k != "contact"})
        if isinstance(fields.get("contact"), dict):
            merge_contact(state, tenant, fields["contact"])
        return jsonify(render(tenant)), 201


@blueprint.patch("/acronis/tenants/<tenant_id>")
def patch_tenant(tenant_id: str) -> Response:
    """Merge fields into a tenant; ``deleted`` true deletes it, false restores it."""
    fields = body()
    state = current_state()
    with state.lock:
        tenant = find_tenant(state, tenant_id, deleted=True)
        patch_fields(tenant, fields)
        change_tenant(state, tenant, fields)
        if "deleted" in fields:
            tenant["_deleted_us"] = tenant["_updated_us"] if fields["deleted"] else None
        return jsonify(render(tenant))


def patch_fields(tenant: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        if key in tenant and key not in FIXED_KEYS and not key.startswith("_"):
            tenant[key] = value


@blueprint.get("/alga/clients")
def all_clients() -> Response:
    state = current_state()
    with state.lock:
        return jsonify([alga_store.public(c) for c in state.clients.values()])


@blueprint.post("/alga/clients")
def add_client() -> tuple[Response, int]:
    client = alga_store.create_client(current_state(), body())
    return jsonify(alga_store.public(client)), 201


@blueprint.patch("/alga/clients/<client_id>")
def patch_client(client_id: str) -> Response:
    state = current_state()
    with state.lock:
        client = alga_store.update_client(state, client_id, body(), quirks=False)
        return jsonify(alga_store.public(client))


@blueprint.delete("/alga/clients/<client_id>")
def remove_client(client_id: str) -> tuple[str, int]:
    alga_store.delete_client(current_state(), client_id)
    return "", 204


@blueprint.get("/alga/clients/<client_id>/locations")
def client_locations(client_id: str) -> Response:
    state = current_state()
    with state.lock:
        alga_store.find_client(state, client_id)
        return jsonify(list(state.locations[client_id]))


@blueprint.post("/faults")
def add_fault() -> tuple[Response, int]:
    """Force an answer on matching calls; ``times`` null means every time."""
    spec = body()
    if spec.get("service") not in ("acronis", "alga") or not isinstance(
        spec.get("status"), int
    ):
        return jsonify(
            acronis_error(400, "bad_fault", "service and status needed")
        ), 400
    try:
        path = re.compile(str(spec.get("path", "")))
    except re.error as exc:
        return jsonify(acronis_error(400, "bad_fault", f"path: {exc}")), 400
    retry_after = spec.get("retry_after")
    fault = Fault(
        service=spec["service"],
        status=spec["status"],
        path=path,
        method=spec.get("method"),
        body_contains=spec.get("body_contains"),
        times=spec.get("times"),
        retry_after=None if retry_after is None else str(retry_after),
    )
    current_state().add_fault(fault)
    return jsonify(spec), 201


@blueprint.delete("/faults")
def clear_faults() -> tuple[str, int]:
    state = current_state()
    with state.lock:
        state.faults.clear()
    return "", 204


@blueprint.post("/config")
def configure() -> Response:
    """Change latency, failure rate or rate limiting while serving."""
    changes = {
        name: value
        for name, value in body().items()
        if name in KNOBS and isinstance(value, KNOBS[name])
    }
    options = current_state().configure(**changes)
    return jsonify(vars(options))
