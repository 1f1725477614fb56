"""Webhook routes: turn a signed notice into queued upserts, and answer 202.

Nothing here calls Acronis or AlgaPSA; the workers do. A delivery is checked
in this order, so that cheap refusals come first: size (before the body is
read), content type, signature, body shape, replay; only then is anything
queued.
"""

from __future__ import annotations

import json
import logging
from typing import IO, Any

import redis
from flask import Blueprint, Response, jsonify, request

from sync.settings import UUID_PATTERN
from web.errors import ApiError
from web.service import Service, service
from web.signatures import (
    ALGA_HEADER,
    TOLERANCE_SECONDS,
    bearer_token,
    secret_matches,
    unauthorized,
    verify_alga,
)

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")

# More tenants than this in one delivery is refused, not half queued.
MAX_TENANTS_PER_DELIVERY = 1000
# How many ``data`` envelopes may wrap the tenant of a delivery.
MAX_DATA_DEPTH = 4
# A webhook id is remembered a little longer than a signature stays valid.
REPLAY_WINDOW_SECONDS = 2 * TOLERANCE_SECONDS + 60
JSON_TYPES = ("application/json",)
TEXT_TYPES = ("text/plain",)
READ_CHUNK = 64 * 1024


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def _raw_body(limit: int, *accepted: str) -> bytes:
    """The body, once its content type is one of ``accepted``; 413 over ``limit``."""
    mimetype = request.mimetype
    if mimetype not in accepted and not mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as {' or '.join(accepted)}",
        )
    return bounded_body(limit)


def bounded_body(limit: int) -> bytes:
    """The body, of which at most ``limit + 1`` bytes are read; 413 past ``limit``.

    A chunked body announces no length. Under a server that ends the stream
    itself (``wsgi.input_terminated``, as gunicorn does) werkzeug would stop
    reading at the limit and hand on the truncated start, so the stream is
    read here, one byte past the limit, to tell a full body from a cut one.
    """
    if request.content_length is not None:
        # An announced length over the limit was refused before the route,
        # and werkzeug reads no further than the length.
        return request.get_data(cache=True)
    environ = request.environ
    if not environ.get("wsgi.input_terminated"):
        return b""  # a stream with no length and no end is not read at all
    body = _read_at_most(environ["wsgi.input"], limit + 1)
    if len(body) > limit:
        raise ApiError(
            413, "too_large", f"the body is over {limit} bytes (WEBHOOK_MAX_BYTES)"
        )
    return body


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        part = stream.read(min(wanted, READ_CHUNK))
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    except RecursionError:
        raise ApiError(
            400, "malformed_json", "the body nests its JSON too deeply"
        ) from None


def _authenticate_acronis(svc: Service, body: bytes) -> str | None:
    """Check the caller; return the webhook id to deduplicate on, if signed."""
    token = bearer_token(request.headers.get("Authorization", ""))
    if token is not None:
        if secret_matches(token, _secret(svc.settings.sync_api_token)):
            return None
        raise unauthorized("bad_token", "the bearer token is not SYNC_API_TOKEN")
    headers = {name.lower(): value for name, value in request.headers.items()}
    return svc.standard.verify(body, headers)


def _remember(svc: Service, source: str, message_id: str) -> str:
    """Record a delivery id; raise 409 when it was seen before."""
    key = svc.keys.webhook_seen(source, message_id)
    if not svc.redis.set(key, "1", nx=True, ex=REPLAY_WINDOW_SECONDS):
        raise ApiError(
            409, "replayed", "this webhook was already received; it is ignored"
        )
    return key


def _forget(svc: Service, key: str | None) -> None:
    """Let the sender retry a delivery that could not be queued."""
    if key is None:
        return
    try:
        svc.redis.delete(key)
    except redis.RedisError:
        log.warning("could not forget webhook key %s; its retry may get a 409", key)


def _enqueue_all(svc: Service, tenant_ids: list[str], replay_key: str | None) -> Any:
    jobs = []
    try:
        for tenant_id in tenant_ids:
            job_id = svc.jobs.enqueue_upsert(tenant_id, source="webhook")
            jobs.append({"tenant_id": tenant_id, "job_id": job_id})
    except BaseException:
        # Whatever stopped the queueing, the sender's retry must get through.
        _forget(svc, replay_key)
        raise
    return jobs


@blueprint.post("/acronis")
def acronis() -> tuple[Response, int]:
    """Queue an upsert for every tenant a delivery names."""
    svc = service()
    body = _raw_body(svc.settings.max_body_bytes, *JSON_TYPES, *TEXT_TYPES)
    message_id = _authenticate_acronis(svc, body)
    if request.mimetype in TEXT_TYPES:
        tenant_ids = tenant_ids_in(body.decode("utf-8", "replace").strip())
    else:
        tenant_ids = tenant_ids_in(_parse_json(body))
    replay_key = None
    if message_id is not None:
        replay_key = _remember(svc, "acronis", message_id)
    jobs = _enqueue_all(svc, tenant_ids, replay_key)
    log.info("webhook %s queued %d upsert(s)", message_id or "(bearer)", len(jobs))
    return jsonify({"accepted": True, "jobs": jobs}), 202


def tenant_ids_in(payload: Any) -> list[str]:
    """The tenant ids a delivery names, checked; raise 400 when there are none.

    Accepted shapes: an id string, a list of ids (or of objects below), and
    objects naming a tenant as ``tenant_id``, ``tenant.id``, ``data.tenant_id``,
    ``data.tenant.id`` or ``data.id`` (an event envelope with ``type``).
    """
    items = payload if isinstance(payload, list) else [payload]
    if len(items) > MAX_TENANTS_PER_DELIVERY:
        raise ApiError(
            400,
            "too_many_tenants",
            f"send at most {MAX_TENANTS_PER_DELIVERY} tenants per delivery",
        )
    found = [_tenant_id_of(item) for item in items]
    if not found:
        raise ApiError(400, "no_tenant", "the delivery names no tenant")
    bad = [tenant_id for tenant_id in found if not UUID_PATTERN.fullmatch(tenant_id)]
    if bad:
        raise ApiError(400, "bad_tenant_id", "every tenant id must be a UUID")
    return list(dict.fromkeys(tenant_id.lower() for tenant_id in found))


def _tenant_id_of(item: Any, depth: int = 0) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for path in (("tenant_id",), ("tenant", "id")):
            value = _dig(item, path)
            if value is not None:
                return _id_string(value)
        data = item.get("data")
        if data is not None:
            # An envelope wraps its event once or twice; deeper is an attack
            # on the stack, not a delivery.
            if depth >= MAX_DATA_DEPTH:
                raise ApiError(
                    400,
                    "bad_event",
                    f"the tenant is nested in over {MAX_DATA_DEPTH} levels of data",
                )
            return _tenant_id_of(data, depth + 1)
        if "id" in item and "type" not in item:
            return _id_string(item["id"])
    raise ApiError(
        400,
        "no_tenant",
        "name the tenant as a UUID string, tenant_id, tenant.id or data.id",
    )


def _id_string(value: Any) -> str:
    # Only a string can be a UUID; anything else is refused unprinted, as
    # printing a deeply nested value would recurse as deep.
    if not isinstance(value, str):
        raise ApiError(400, "bad_tenant_id", "every tenant id must be a UUID")
    return value


def _dig(item: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = item
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value


@blueprint.post("/alga")
def alga() -> tuple[Response, int]:
    """Follow a client event from AlgaPSA: re-sync its tenant, or drop its link."""
    svc = service()
    body = _raw_body(svc.settings.max_body_bytes, *JSON_TYPES)
    signature = verify_alga(
        _secret(svc.settings.alga_webhook_secret),
        body,
        request.headers.get(ALGA_HEADER, ""),
    )
    payload = _parse_json(body)
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_event", "an AlgaPSA event is a JSON object")
    replay_key = _remember(svc, "alga", signature)
    try:
        answer = _follow_alga_event(svc, payload)
    except BaseException:
        _forget(svc, replay_key)
        raise
    return jsonify(answer), 202


def _follow_alga_event(svc: Service, payload: dict[str, Any]) -> dict[str, Any]:
    event = payload.get("event") or payload.get("type") or ""
    if not isinstance(event, str):
        return {"accepted": True, "ignored": "the event name is not a string"}
    client_id = _client_id_of(payload)
    if not event.startswith("client.") or client_id is None:
        return {"accepted": True, "ignored": f"not a client event: {event!r}"}
    tenant_id = svc.links.tenant_of(client_id)
    if tenant_id is None:
        return {"accepted": True, "ignored": "the client is not linked to a tenant"}
    if event == "client.deleted":
        svc.links.remove(tenant_id)
        log.info(
            "client %s deleted in AlgaPSA: tenant %s unlinked", client_id, tenant_id
        )
        return {"accepted": True, "unlinked": tenant_id}
    job_id = svc.jobs.enqueue_upsert(tenant_id, source="alga")
    return {"accepted": True, "jobs": [{"tenant_id": tenant_id, "job_id": job_id}]}


def _client_id_of(payload: dict[str, Any]) -> str | None:
    for path in (
        ("data", "client_id"),
        ("data", "client", "client_id"),
        ("data", "id"),
        ("client_id",),
    ):
        value = _dig(payload, path)
        if isinstance(value, str | int) and str(value):
            return str(value)
    return None
