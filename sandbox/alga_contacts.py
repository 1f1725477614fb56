"""AlgaPSA locations, tags and contacts, nested in the :mod:`sandbox.alga` blueprint.

Locations hold a client's address, phone and email (they are not client
columns); the REST API can add one but neither change nor remove it.
Contacts are unique by email across the whole Alga tenant.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox import alga_store as store
from sandbox.alga import json_body, like, pagination, paging, window
from sandbox.alga_store import AlgaProblem, Detail
from sandbox.state import SandboxState, current_state, iso_utc

blueprint = Blueprint("related", __name__)

LOCATION_REQUIRED = ("address_line1", "city", "country_code", "country_name")
LOCATION_TEXT = [
    "location_name",
    "address_line2",
    "address_line3",
    "state_province",
    "postal_code",
    "region_code",
    "phone",
    "fax",
    "notes",
]
CONTACT_FIELDS = frozenset(
    {
        "full_name",
        "client_id",
        "phone_numbers",
        "email",
        "primary_email_canonical_type",
        "primary_email_custom_type",
        "primary_email_custom_type_id",
        "additional_email_addresses",
        "role",
        "notes",
        "is_inactive",
        "tags",
    }
)


def location_problems(body: dict[str, Any]) -> list[Detail]:
    problems = []
    for field in LOCATION_REQUIRED:
        value = body.get(field)
        if field not in body:
            problems.append(store.required(field))
        elif not isinstance(value, str):
            problems.append(store.wrong_type(field, "string", value))
        elif field == "country_code" and not 2 <= len(value) <= 3:
            problems.append(length_problem(field, value, 2, 3))
        elif not value:
            problems.append(length_problem(field, value, 1, None))
    for field in LOCATION_TEXT:
        if field in body and not isinstance(body[field], str):
            problems.append(store.wrong_type(field, "string", body[field]))
    if "email" in body:
        problems.extend(store.check_email("email", body["email"]))
    return problems


def length_problem(field: str, value: str, least: int, most: int | None) -> Detail:
    short = len(value) < least
    limit, bound = ("too_small", least) if short else ("too_big", most)
    word = "at least" if short else "at most"
    return {
        "code": limit,
        "minimum" if short else "maximum": bound,
        "type": "string",
        "inclusive": True,
        "exact": False,
        "message": f"String must contain {word} {bound} character(s)",
        "path": [field],
    }


def normalise_phone(phone: str) -> str:
    """Keep a leading plus and the digits: ``+1 555 123 4567`` -> ``+15551234567``."""
    digits = re.sub(r"\D", "", phone)
    return f"+{digits}" if phone.strip().startswith("+") else digits


def new_location(
    state: SandboxState, client_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A location from a valid body, keys in the order the server sends them."""
    now = iso_utc(state.tick(), zone="Z", digits=3)
    phone = body.get("phone")
    return {
        "location_id": state.new_uuid(),
        "tenant": state.alga_tenant,
        "client_id": client_id,
        "location_name": body.get("location_name"),
        "address_line1": body["address_line1"],
        "address_line2": body.get("address_line2"),
        "address_line3": body.get("address_line3"),
        "city": body["city"],
        "state_province": body.get("state_province"),
        "postal_code": body.get("postal_code"),
        "country_code": body["country_code"],
        "country_name": body["country_name"],
        "region_code": body.get("region_code"),
        "is_billing_address": body.get("is_billing_address") is True,
        "is_shipping_address": body.get("is_shipping_address") is True,
        "is_default": body.get("is_default") is True,
        "phone": normalise_phone(phone) if phone else phone,
        "fax": body.get("fax"),
        "email": body.get("email"),
        "notes": body.get("notes"),
        "is_active": body.get("is_active") is not False,
        "created_at": now,
        "updated_at": now,
        "default_billing_profile_id": None,
        "phone_extension": None,
        "fax_extension": None,
    }


@blueprint.get("/clients/<client_id>/locations")
def list_locations(client_id: str) -> Response:
    state = current_state()
    with state.lock:
        store.find_client(state, client_id)
        return jsonify(data=list(state.locations[client_id]))


@blueprint.post("/clients/<client_id>/locations")
def create_location(client_id: str) -> tuple[Response, int]:
    state = current_state()
    body = json_body()
    with state.lock:
        store.find_client(state, client_id)
        problems = location_problems(body)
        if problems:
            raise store.validation_failed(problems)
        location = new_location(state, client_id, body)
        if location["is_default"]:
            for other in state.locations[client_id]:
                other["is_default"] = False
        state.locations[client_id].append(location)
        return jsonify(data=location), 201


@blueprint.get("/tags/entity/client/<client_id>")
def list_client_tags(client_id: str) -> Response:
    state = current_state()
    with state.lock:
        client = store.find_client(state, client_id)
        tags = [
            {
                "tag_id": f"{client_id[:24]}{index:012d}",
                "tag_text": text,
                "tagged_id": client_id,
                "tagged_type": "client",
                "background_color": None,
                "text_color": None,
                "created_at": client["created_at"],
            }
            for index, text in enumerate(state.tags.get(client_id, []))
        ]
    return jsonify(data=tags)


def contact_problems(body: dict[str, Any]) -> list[Detail]:
    unknown = sorted(set(body) - CONTACT_FIELDS)
    if unknown:
        listed = ", ".join(f"'{key}'" for key in unknown)
        return [
            {
                "code": "unrecognized_keys",
                "keys": unknown,
                "path": [],
                "message": f"Unrecognized key(s) in object: {listed}",
            }
        ]
    problems = []
    name = body.get("full_name")
    if "full_name" not in body:
        problems.append(store.required("full_name"))
    elif not isinstance(name, str) or not name.strip():
        problems.append(store.wrong_type("full_name", "string", name))
    if "email" in body:
        problems.extend(store.check_email("email", body["email"]))
    return problems


@blueprint.post("/contacts")
def create_contact() -> tuple[Response, int]:
    state = current_state()
    body = json_body()
    with state.lock:
        problems = contact_problems(body)
        if problems:
            raise store.validation_failed(problems)
        client_id = body.get("client_id")
        if client_id is not None and client_id not in state.clients:
            raise AlgaProblem(400, "VALIDATION_ERROR", "Client not found")
        email = str(body.get("email", "")).lower()
        if email and any(c["email"].lower() == email for c in state.contacts.values()):
            message = "A contact with this email address already exists in the system"
            raise AlgaProblem(409, "CONFLICT", message)
        contact = new_contact(state, body)
        state.contacts[contact["contact_name_id"]] = contact
        return jsonify(data=contact), 201


def new_contact(state: SandboxState, body: dict[str, Any]) -> dict[str, Any]:
    now = iso_utc(state.tick(), zone="Z", digits=3)
    phones = [
        {
            "contact_phone_number_id": state.new_uuid(),
            "phone_number": phone.get("phone_number", ""),
            "normalized_phone_number": normalise_phone(
                str(phone.get("phone_number", ""))
            ),
            "canonical_type": phone.get("canonical_type", "work"),
            "custom_phone_type_id": None,
            "custom_type": None,
            "is_default": index == 0,
            "display_order": index,
        }
        for index, phone in enumerate(body.get("phone_numbers") or [])
        if isinstance(phone, dict)
    ]
    return {
        "tenant": state.alga_tenant,
        "contact_name_id": state.new_uuid(),
        "full_name": body["full_name"].strip(),
        "email": body.get("email", ""),
        "role": body.get("role"),
        "approver": None,
        "created_at": now,
        "updated_at": now,
        "is_inactive": body.get("is_inactive") is True,
        "notes": body.get("notes"),
        "is_client_admin": False,
        "client_id": body.get("client_id"),
        "notes_document_id": None,
        "inbound_ticket_defaults_id": None,
        "portal_visibility_group_id": None,
        "primary_email_canonical_type": "work",
        "primary_email_custom_type_id": None,
        "phone_numbers": phones,
        "default_phone_number": phones[0]["phone_number"] if phones else None,
        "default_phone_type": phones[0]["canonical_type"] if phones else None,
        "additional_email_addresses": [],
        "primary_email_type": "work",
    }


@blueprint.get("/contacts")
def list_contacts() -> Response:
    return contact_page(request.args.get("client_id"))


@blueprint.get("/clients/<client_id>/contacts")
def list_client_contacts(client_id: str) -> Response:
    state = current_state()
    with state.lock:
        store.find_client(state, client_id)
    return contact_page(client_id)


def contact_page(client_id: str | None) -> Response:
    state = current_state()
    page, limit = paging(request.args)
    name_like = like(request.args.get("full_name", ""))
    email = request.args.get("email", "").lower()
    with state.lock:
        chosen = [
            contact
            for contact in reversed(state.contacts.values())
            if (client_id is None or contact["client_id"] == client_id)
            and name_like.search(contact["full_name"])
            and (not email or contact["email"].lower() == email)
        ]
        data = window(chosen, page, limit)
    meta = {"sort": "created_at", "order": "desc", "filters": {}}
    return jsonify(
        data=data, pagination=pagination(page, limit, len(chosen)), meta=meta
    )
