"""AlgaPSA clients as the real server keeps them: validation, quirks, shape.

The rules follow what a running AlgaPSA answered (see the recorded
fixtures): names are trimmed and unique case-sensitively, unknown keys and
unknown ``properties`` keys vanish, ``tags`` are stored but never shown,
``email``/``phone_no``/``address`` are validated and then dropped on create
and break an update. Every problem is raised as :class:`AlgaProblem`
carrying the exact status and body to answer with.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.state import Client, SandboxState, iso_utc

BILLING_CYCLES = (
    "weekly",
    "bi-weekly",
    "monthly",
    "quarterly",
    "semi-annually",
    "annually",
)
CLIENT_TYPES = ("company", "individual")
DELIVERY_METHODS = ("email", "mail", "portal")
PROPERTY_KEYS = frozenset(
    {
        "industry",
        "company_size",
        "annual_revenue",
        "primary_contact_id",
        "primary_contact_name",
        "status",
        "type",
        "billing_address",
        "tax_id",
        "notes",
        "payment_terms",
        "website",
        "parent_client_id",
        "parent_client_name",
        "last_contact_date",
        "logo",
    }
)
TEXT_FIELDS = frozenset(
    {
        "url",
        "notes",
        "tax_id_number",
        "payment_terms",
        "preferred_payment_method",
        "tax_exemption_certificate",
        "timezone",
        "region_code",
        "default_currency_code",
        "invoice_template_id",
        "billing_contact_id",
        "account_manager_id",
    }
)
BOOL_FIELDS = frozenset({"auto_invoice", "is_tax_exempt", "is_inactive"})
ENUM_FIELDS = {
    "billing_cycle": BILLING_CYCLES,
    "client_type": CLIENT_TYPES,
    "invoice_delivery_method": DELIVERY_METHODS,
}
# Accepted and checked, but they are no longer client columns.
DROPPED_FIELDS = ("email", "phone_no", "address")
# Only GET answers carry these three; POST and PUT answers lack them.
READ_ONLY_KEYS = ("credit_balance", "account_manager_full_name", "logoUrl")
# Every key of a client answer, in the server's order, with the value a new
# client gets when the create body does not set it.
CLIENT_TEMPLATE: dict[str, Any] = {
    "tenant": None,
    "client_id": None,
    "client_name": None,
    "url": "",
    "properties": None,
    "billing_type": None,
    "payment_terms": None,
    "credit_limit": None,
    "preferred_payment_method": None,
    "auto_invoice": False,
    "invoice_delivery_method": None,
    "created_at": None,
    "updated_at": None,
    "is_inactive": False,
    "client_type": "company",
    "is_tax_exempt": False,
    "tax_exemption_certificate": None,
    "tax_id_number": None,
    "notes": None,
    "billing_cycle": None,
    "timezone": None,
    "notes_document_id": None,
    "invoice_template_id": None,
    "billing_contact_id": None,
    "billing_email": None,
    "region_code": None,
    "account_manager_id": None,
    "default_currency_code": "USD",
    "sla_policy_id": None,
    "inbound_ticket_defaults_id": None,
    "lifecycle_status": "active",
    "credit_balance": "0",
    "account_manager_full_name": None,
    "logoUrl": None,
}
CLIENT_KEYS = tuple(CLIENT_TEMPLATE)
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
EMAIL_RE = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
Detail = dict[str, Any]


class AlgaProblem(Exception):
    """An AlgaPSA error answer: its status and its JSON body."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status = status
        error: dict[str, Any] = {"code": code, "message": message}
        if details is not None:
            error["details"] = details
        self.body = {"error": error}


def validation_failed(
    details: list[Detail], message: str = "Validation failed"
) -> AlgaProblem:
    return AlgaProblem(400, "VALIDATION_ERROR", message, details)


def js_type(value: Any) -> str:
    """The name zod gives the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def wrong_type(field: str, expected: str, value: Any) -> Detail:
    received = js_type(value)
    return {
        "code": "invalid_type",
        "expected": expected,
        "received": received,
        "path": [field],
        "message": f"Expected {expected}, received {received}",
    }


def required(field: str) -> Detail:
    if field in ENUM_FIELDS:
        return {
            "expected": " | ".join(f"'{option}'" for option in ENUM_FIELDS[field]),
            "received": "undefined",
            "code": "invalid_type",
            "path": [field],
            "message": "Required",
        }
    return {
        "code": "invalid_type",
        "expected": "string",
        "received": "undefined",
        "path": [field],
        "message": "Required",
    }


def bad_enum(field: str, value: Any) -> Detail:
    options = ENUM_FIELDS[field]
    expected = " | ".join(f"'{option}'" for option in options)
    return {
        "received": value,
        "code": "invalid_enum_value",
        "options": list(options),
        "path": [field],
        "message": f"Invalid enum value. Expected {expected}, received '{value}'",
    }


def check_name(value: Any) -> tuple[str | None, list[Detail]]:
    """The trimmed client name, or the problems with it."""
    if not isinstance(value, str):
        return None, [wrong_type("client_name", "string", value)]
    name = value.strip()
    if not name:
        limit = {
            "code": "too_small",
            "minimum": 1,
            "message": "Client name is required",
        }
    elif len(name) > 255:
        message = "Client name must be 255 characters or less"
        limit = {"code": "too_big", "maximum": 255, "message": message}
    else:
        return name, []
    detail = {**limit, "type": "string", "inclusive": True, "exact": False}
    detail["message"] = detail.pop("message")
    return None, [{**detail, "path": ["client_name"]}]


def check_field(field: str, value: Any) -> list[Detail]:
    """Problems with one optional field; unknown fields have none."""
    if field in ENUM_FIELDS:
        if not isinstance(value, str):
            return [wrong_type(field, "string", value)]
        return [] if value in ENUM_FIELDS[field] else [bad_enum(field, value)]
    if field in TEXT_FIELDS or field in ("phone_no", "address"):
        return [] if isinstance(value, str) else [wrong_type(field, "string", value)]
    if field in BOOL_FIELDS:
        return [] if isinstance(value, bool) else [wrong_type(field, "boolean", value)]
    if field in ("email", "billing_email"):
        return check_email(field, value)
    if field == "credit_limit" and js_type(value) != "number":
        return [wrong_type(field, "number", value)]
    if field == "properties" and not isinstance(value, dict):
        return [wrong_type(field, "object", value)]
    if field == "tags" and not (
        isinstance(value, list) and all(isinstance(tag, str) for tag in value)
    ):
        return [wrong_type(field, "array", value)]
    return []


def check_email(field: str, value: Any) -> list[Detail]:
    if not isinstance(value, str):
        return [wrong_type(field, "string", value)]
    if EMAIL_RE.match(value):
        return []
    message = "Invalid email"
    return [
        {
            "validation": "email",
            "code": "invalid_string",
            "message": message,
            "path": [field],
        }
    ]


def check_body(
    body: dict[str, Any], *, creating: bool
) -> tuple[str | None, list[Detail]]:
    """Validate a create or update body; return the trimmed name and problems."""
    problems: list[Detail] = []
    name: str | None = None
    if "client_name" in body:
        name, problems = check_name(body["client_name"])
    elif creating:
        problems.append(required("client_name"))
    if creating and "billing_cycle" not in body:
        problems.append(required("billing_cycle"))
    for field, value in body.items():
        if field != "client_name":
            problems.extend(check_field(field, value))
    return name, problems


def stored_values(body: dict[str, Any]) -> dict[str, Any]:
    """The columns a valid body sets; everything else is dropped."""
    kept = {
        field: value
        for field, value in body.items()
        if field in TEXT_FIELDS or field in BOOL_FIELDS or field in ENUM_FIELDS
    }
    if "credit_limit" in body:
        kept["credit_limit"] = body["credit_limit"]
    if "billing_email" in body:
        kept["billing_email"] = body["billing_email"]
    if "properties" in body:
        properties = body["properties"]
        kept["properties"] = {k: v for k, v in properties.items() if k in PROPERTY_KEYS}
    return kept


def conflict(state: SandboxState, name: str) -> AlgaProblem:
    details = f"Key (tenant, client_name)=({state.alga_tenant}, {name}) already exists."
    return AlgaProblem(409, "CONFLICT", "Resource already exists", details)


def create_client(state: SandboxState, body: dict[str, Any]) -> Client:
    """Insert a client from a POST body, or raise the server's answer."""
    name, problems = check_body(body, creating=True)
    if problems or name is None:
        raise validation_failed(problems)
    with state.lock:
        if name in state.client_names:
            raise conflict(state, name)
        now = state.tick()
        client: Client = {
            **CLIENT_TEMPLATE,
            "tenant": state.alga_tenant,
            "client_id": state.new_uuid(),
            "client_name": name,
            "_created_us": now,
            "_seq": len(state.clients) + 1,
        }
        client.update(stored_values(body))
        stamp(client, now, created=True)
        state.clients[client["client_id"]] = client
        state.client_names[name] = client["client_id"]
        state.tags[client["client_id"]] = list(body.get("tags", []))
        state.locations[client["client_id"]] = []
        state.client_order.clear()
        return client


def update_client(
    state: SandboxState, client_id: str, body: dict[str, Any], *, quirks: bool = True
) -> Client:
    """Apply a partial update; ``quirks`` makes a valid email fail as on the server."""
    name, problems = check_body(body, creating=False)
    if problems:
        raise validation_failed(problems)
    if quirks and any(field in body for field in DROPPED_FIELDS):
        message = (
            "The server is misconfigured for this operation. Please contact support."
        )
        raise AlgaProblem(500, "INTERNAL_CONFIGURATION", message)
    with state.lock:
        client = find_client(state, client_id)
        if name is not None and name != client["client_name"]:
            if name in state.client_names:
                raise conflict(state, name)
            del state.client_names[client["client_name"]]
            state.client_names[name] = client_id
            client["client_name"] = name
        client.update(stored_values(body))
        if "tags" in body:
            state.tags[client_id] = list(body["tags"])
        stamp(client, state.tick())
        state.client_order.clear()
        return client


def delete_client(state: SandboxState, client_id: str) -> None:
    with state.lock:
        client = find_client(state, client_id)
        del state.clients[client_id]
        del state.client_names[client["client_name"]]
        state.tags.pop(client_id, None)
        state.locations.pop(client_id, None)
        state.client_order.clear()


def find_client(state: SandboxState, client_id: str) -> Client:
    """The client with ``client_id``; 400 for a malformed id, 404 when absent."""
    if not UUID_RE.match(client_id):
        raise AlgaProblem(400, "VALIDATION_ERROR", "Invalid client ID format")
    with state.lock:
        client = state.clients.get(client_id)
    if client is None:
        raise AlgaProblem(404, "NOT_FOUND", "client not found")
    return client


def stamp(client: Client, now_us: int, *, created: bool = False) -> None:
    client["_updated_us"] = now_us
    client["updated_at"] = iso_utc(now_us, zone="Z", digits=3)
    if created:
        client["created_at"] = client["updated_at"]


def public(client: Client, *, full: bool = True) -> dict[str, Any]:
    """The client as the API shows it; ``full`` for GET answers."""
    keys = CLIENT_KEYS if full else CLIENT_KEYS[: -len(READ_ONLY_KEYS)]
    return {key: client[key] for key in keys}
