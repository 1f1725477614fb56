"""The fake AlgaPSA REST API under ``/alga/api/v1``: auth, rate limit, clients.

Locations, tags and contacts live in :mod:`sandbox.alga_contacts`, in a
blueprint nested in this one, so they share its key check and limiter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.datastructures import MultiDict

from sandbox import alga_store as store
from sandbox.alga_store import AlgaProblem, Detail
from sandbox.state import (
    ALGA_API_KEY,
    Client,
    current_state,
    iso_utc,
    parse_iso,
)

blueprint = Blueprint("alga", __name__)

# Routes whose successful answers carry X-RateLimit-* headers. The contacts
# routes are here because the recorded contact creation carried them.
RATE_HEADER_ENDPOINTS = frozenset(
    {
        "alga.list_clients",
        "alga.create_client",
        "alga.get_client",
        "alga.update_client",
        "alga.delete_client",
        "alga.related.create_contact",
        "alga.related.list_contacts",
    }
)
SORT_FIELDS = (
    "created_at",
    "updated_at",
    "client_name",
    "billing_cycle",
    "client_type",
)
# Date filter: (stamp column, True when it is a lower bound).
DATE_FILTERS = {
    "created_from": ("_created_us", True),
    "created_to": ("_created_us", False),
    "updated_from": ("_updated_us", True),
    "updated_to": ("_updated_us", False),
}


@blueprint.errorhandler(AlgaProblem)
def answer_problem(problem: AlgaProblem) -> tuple[Response, int]:
    return jsonify(problem.body), problem.status


@blueprint.before_request
def authenticate_and_limit() -> tuple[Response, int] | None:
    """Check ``x-api-key``, then spend one call from the token bucket."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        return jsonify({"error": "Unauthorized: API key missing"}), 401
    if key != ALGA_API_KEY:
        return jsonify(
            {"error": {"code": "UNAUTHORIZED", "message": "Invalid API key"}}
        ), 401
    state = current_state()
    with state.lock:
        allowed = state.bucket.take()
        g.rate_remaining = state.bucket.remaining
        wait = state.bucket.seconds_until_next()
        enforced = state.options.enforce_rate_limit
    if allowed or not enforced:
        return None
    return too_many(wait)


def too_many(wait: float) -> tuple[Response, int]:
    state = current_state()
    reset_us = state.tick() + int(wait * 1_000_000)
    details = {"retry_after_ms": max(1, math.ceil(wait * 1000))}
    body = {
        "error": {
            "code": "RATE_LIMITED",
            "message": "Too many requests",
            "details": details,
        }
    }
    response = jsonify(body)
    response.headers["Retry-After"] = "1"
    response.headers["X-RateLimit-Reset"] = iso_utc(reset_us, zone="Z", digits=3)
    return response, 429


@blueprint.after_request
def add_rate_headers(response: Response) -> Response:
    ok = 200 <= response.status_code < 300
    if ok and request.endpoint in RATE_HEADER_ENDPOINTS and "rate_remaining" in g:
        response.headers["X-RateLimit-Limit"] = str(current_state().bucket.burst)
        response.headers["X-RateLimit-Remaining"] = str(g.rate_remaining)
    return response


def json_body() -> dict[str, Any]:
    """The JSON object sent; malformed or non-object JSON counts as empty."""
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else {}


@blueprint.get("/clients")
def list_clients() -> Response:
    state = current_state()
    page, limit = paging(request.args)
    sort, order = sorting(request.args)
    filters, wanted = client_filters(request.args)
    with state.lock:
        if filters:
            # Filter first: sorting a few matches beats sorting every client.
            found = [client for client in state.clients.values() if wanted(client)]
            chosen = ordered_by(found, sort, order)
        else:
            chosen = sorted_clients(sort, order)
        data = [store.public(client) for client in window(chosen, page, limit)]
    meta = {"sort": sort, "order": order, "filters": filters}
    return jsonify(
        data=data, pagination=pagination(page, limit, len(chosen)), meta=meta
    )


@blueprint.post("/clients")
def create_client() -> tuple[Response, int]:
    client = store.create_client(current_state(), json_body())
    return jsonify(data=store.public(client, full=False)), 201


@blueprint.get("/clients/<client_id>")
def get_client(client_id: str) -> Response:
    state = current_state()
    with state.lock:
        return jsonify(data=store.public(store.find_client(state, client_id)))


@blueprint.put("/clients/<client_id>")
def update_client(client_id: str) -> Response:
    state = current_state()
    with state.lock:
        client = store.update_client(state, client_id, json_body())
        return jsonify(data=store.public(client, full=False))


@blueprint.delete("/clients/<client_id>")
def delete_client(client_id: str) -> tuple[str, int]:
    store.delete_client(current_state(), client_id)
    return "", 204


def query_problem(detail: Detail) -> AlgaProblem:
    return store.validation_failed([detail], "Query validation failed")


def number_arg(args: MultiDict[str, str], name: str, default: int, top: int) -> int:
    """A whole-number query argument between 1 and ``top``, as zod checks it."""
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = float(raw) if raw.strip() else math.nan
    except ValueError:
        value = math.nan
    if math.isnan(value):
        message = "Expected number, received nan"
        detail = {"code": "invalid_type", "expected": "number", "received": "nan"}
        raise query_problem({**detail, "path": [name], "message": message})
    if value < 1:
        raise query_problem(out_of_range(name, "too_small", 1))
    if value > top:
        raise query_problem(out_of_range(name, "too_big", top))
    return int(value)


def out_of_range(name: str, code: str, bound: int) -> Detail:
    small = code == "too_small"
    words = "greater than or equal to" if small else "less than or equal to"
    return {
        "code": code,
        "minimum" if small else "maximum": bound,
        "type": "number",
        "inclusive": True,
        "exact": False,
        "message": f"Number must be {words} {bound}",
        "path": [name],
    }


def paging(args: MultiDict[str, str]) -> tuple[int, int]:
    return number_arg(args, "page", 1, 10**9), number_arg(args, "limit", 25, 100)


def choice_arg(args: MultiDict[str, str], name: str, options: tuple[str, ...]) -> str:
    value = args.get(name, options[0])
    if value in options:
        return value
    expected = " | ".join(f"'{option}'" for option in options)
    raise query_problem(
        {
            "received": value,
            "code": "invalid_enum_value",
            "options": list(options),
            "path": [name],
            "message": f"Invalid enum value. Expected {expected}, received '{value}'",
        }
    )


def sorting(args: MultiDict[str, str]) -> tuple[str, str]:
    return choice_arg(args, "sort", SORT_FIELDS), choice_arg(
        args, "order", ("desc", "asc")
    )


def like(value: str) -> re.Pattern[str]:
    """SQL ``ILIKE '%value%'`` without escaping, as the server builds it."""
    parts = (
        ".*" if char == "%" else "." if char == "_" else re.escape(char)
        for char in value
    )
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def client_filters(args: MultiDict[str, str]) -> tuple[dict[str, Any], Any]:
    """The filters named in ``args`` and a predicate that applies them all."""
    filters: dict[str, Any] = {}
    tests: list[Any] = []
    if "client_name" in args:
        filters["client_name"] = args["client_name"]
        name_like = like(args["client_name"])
        tests.append(lambda client: name_like.search(client["client_name"]))
    if "search" in args:
        filters["search"] = args["search"]
        tests.append(searcher(like(args["search"])))
    for name in ("is_inactive", "is_tax_exempt"):
        if name in args:
            filters[name] = flag = choice_arg(args, name, ("true", "false")) == "true"
            tests.append(lambda client, name=name, flag=flag: client[name] is flag)
    for name in ("client_type", "billing_cycle"):
        if name in args:
            filters[name] = value = args[name]
            tests.append(lambda client, name=name, value=value: client[name] == value)
    for name, (column, lower) in DATE_FILTERS.items():
        if name in args:
            filters[name] = args[name]
            tests.append(date_test(column, lower, date_arg(args[name], name)))
    return filters, lambda client: all(test(client) for test in tests)


def searcher(pattern: re.Pattern[str]) -> Any:
    """Match the name or the default location's email, phone or address."""
    state = current_state()

    def test(client: Client) -> bool:
        texts = [client["client_name"]]
        for location in state.locations.get(client["client_id"], ()):
            if location["is_default"]:
                texts += [
                    location["email"] or "",
                    location["phone"] or "",
                    location["address_line1"],
                ]
        return any(pattern.search(text) for text in texts)

    return test


def date_test(column: str, lower: bool, bound: int) -> Any:
    """Keep clients whose stamp, to the millisecond, is on the right of ``bound``."""

    def test(client: Client) -> bool:
        shown: int = client[column] // 1000 * 1000
        return shown >= bound if lower else shown <= bound

    return test


def date_arg(value: str, name: str) -> int:
    micros = parse_iso(value, need_zone=True)
    if micros is None:
        raise query_problem(
            {
                "code": "invalid_string",
                "validation": "datetime",
                "message": "Invalid datetime",
                "path": [name],
            }
        )
    # Stamps are shown to the millisecond, so compare at that precision.
    return micros // 1000 * 1000


def sorted_clients(sort: str, order: str) -> list[Client]:
    """Every client in list order, cached until the next change."""
    state = current_state()
    cached = state.client_order.get((sort, order))
    if cached is None:
        cached = ordered_by(state.clients.values(), sort, order)
        state.client_order[(sort, order)] = cached
    return cached


def ordered_by(clients: Iterable[Client], sort: str, order: str) -> list[Client]:
    column = {"created_at": "_created_us", "updated_at": "_updated_us"}.get(sort, sort)
    return sorted(
        clients,
        key=lambda client: (client[column], client["_seq"]),
        reverse=order == "desc",
    )


def window(items: list[Any], page: int, limit: int) -> list[Any]:
    start = (page - 1) * limit
    return items[start : start + limit]


def pagination(page: int, limit: int, total: int) -> dict[str, Any]:
    pages = math.ceil(total / limit)
    return {
        "page": page,
        "limit": limit,
        "total": total,
        "totalPages": pages,
        "hasNext": page < pages,
        "hasPrev": page > 1,
    }
