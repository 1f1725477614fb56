"""Operator routes: start a sync, follow a job, preview, health, metrics.

``/sync``, ``/jobs`` and ``/preview`` need ``Authorization: Bearer
<SYNC_API_TOKEN>``, the admin's login as HTTP Basic, or a logged-in admin
session. The routes take no CSRF token, so a session is only taken from a
request this server's own pages sent (see :mod:`web.dashboard`).
``/health``, ``/ready`` and ``/metrics`` are open, as probes and scrapers
expect; they show counts and ages, never tenant data.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sync.console import plan_to_dict
from sync.errors import SyncError
from web.admin_auth import basic_login_ok, signed_in
from web.dashboard import SAFE_METHODS, foreign_reason, shows_own_origin
from web.errors import ApiError
from web.service import Service, service
from web.signatures import bearer_token, secret_matches
from worker.metrics import collect

log = logging.getLogger(__name__)

blueprint = Blueprint("api", __name__)

DEFAULT_PAGE = 50
MAX_PAGE = 500
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})
# The ids RQ accepts, and a length no job id of ours comes near.
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def require_operator(svc: Service) -> None:
    """Let the request on with the API token, the admin login or session; else 401."""
    token = bearer_token(request.headers.get("Authorization", ""))
    expected = svc.settings.sync_api_token
    if (
        token is not None
        and expected is not None
        and secret_matches(token, expected.get_secret_value())
    ):
        return
    if basic_login_ok() or _own_page_session():
        return
    raise ApiError(
        401,
        "unauthorized",
        "send Authorization: Bearer <SYNC_API_TOKEN> or the admin login",
        headers={"WWW-Authenticate": 'Bearer, Basic realm="alga-acronis-sync"'},
    )


def _own_page_session() -> bool:
    """An admin session, sent by this server's own pages when it changes things."""
    if foreign_reason() or not signed_in():
        return False
    return request.method in SAFE_METHODS or shows_own_origin()


def _flag(name: str) -> bool:
    raw = request.args.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ApiError(400, "bad_parameter", f"{name} must be true or false")


def _whole(name: str, default: int, largest: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or int(raw) > largest:
        raise ApiError(
            400, "bad_parameter", f"{name} must be a whole number up to {largest}"
        )
    return int(raw)


@blueprint.post("/sync")
def start_sync() -> tuple[Response, int]:
    """Queue a full reconcile (``?dry_run=true`` writes nothing)."""
    svc = service()
    require_operator(svc)
    dry_run = _flag("dry_run")
    job_id = svc.jobs.enqueue_reconcile(dry_run=dry_run, source="api")
    log.info("reconcile queued as job %s (dry run: %s)", job_id, dry_run)
    return jsonify({"job_id": job_id, "dry_run": dry_run}), 202


@blueprint.get("/jobs/<job_id>")
def job(job_id: str) -> Response:
    """The state and result of one job."""
    svc = service()
    require_operator(svc)
    if not JOB_ID_PATTERN.fullmatch(job_id):
        # RQ refuses such an id with an error of its own; none of ours has one.
        raise ApiError(404, "not_found", "no job has such an id")
    report = svc.jobs.report(job_id)
    if report is None:
        raise ApiError(404, "unknown_job", "no such job, or its result has expired")
    return jsonify(report)


@blueprint.get("/preview")
def preview() -> Response:
    """What a sync would do, one page of tenants at a time; writes nothing."""
    svc = service()
    require_operator(svc)
    offset = _whole("offset", 0, 10**9)
    limit = _whole("limit", DEFAULT_PAGE, MAX_PAGE)
    try:
        with svc.runtime_lock:
            plans = svc.runtime().engine().plan()
    except SyncError as exc:
        status = 503 if exc.retryable else 502
        raise ApiError(status, "remote_failed", str(exc)) from exc
    page = plans[offset : offset + limit]
    return jsonify(
        {
            "total": len(plans),
            "offset": offset,
            "limit": limit,
            "plans": [plan_to_dict(plan) for plan in page],
        }
    )


@blueprint.get("/health")
def health() -> Response:
    """The process answers; nothing else is checked."""
    return jsonify({"status": "ok"})


@blueprint.get("/ready")
def ready() -> tuple[Response, int]:
    """Ready when Redis answers; shows the queue depth and the last sync's age."""
    svc = service()
    try:
        svc.redis.ping()
        depth = svc.jobs.depth()
        last = svc.links.last_run()
    except redis.RedisError as exc:
        log.warning("not ready: Redis does not answer (%s)", type(exc).__name__)
        answer = {"code": "not_ready", "message": "Redis does not answer"}
        return jsonify({"error": answer}), 503
    return jsonify(
        {
            "status": "ready",
            "queue_depth": depth,
            "last_sync_age_seconds": last_success_age(last),
        }
    ), 200


def last_success_age(summary: dict[str, Any] | None) -> float | None:
    """Seconds since a saved run summary ended, or None when it failed or is absent."""
    if not summary or summary.get("error") or summary.get("failed"):
        return None
    try:
        started = datetime.fromisoformat(str(summary["started_at"]))
    except (KeyError, ValueError):
        return None
    ended = started.timestamp() + float(summary.get("duration_seconds") or 0)
    return round(max(0.0, datetime.now(UTC).timestamp() - ended), 1)


@blueprint.get("/metrics")
def metrics() -> Response:
    """Counters shared by every process, in the Prometheus text format."""
    svc = service()
    try:
        # The collector leaves out what Redis cannot give; a scrape of
        # nothing must show as failed, not as an empty success.
        svc.redis.ping()
    except redis.RedisError as exc:
        log.warning("metrics: Redis does not answer (%s)", type(exc).__name__)
        raise ApiError(
            503, "metrics_unavailable", "Redis does not answer: no counters to show"
        ) from exc
    text = generate_latest(collect(svc.redis, svc.settings))
    return Response(text, content_type=CONTENT_TYPE_LATEST)
