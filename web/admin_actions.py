"""``/admin/actions``, ``/admin/jobs/<id>`` and ``/admin/mapping``.

The actions put jobs on the queue and return at once; a dry run leads to
its job's page, which reloads itself until the job is done and then shows
every planned change. The mapping page reads one tenant and maps it, which
writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from sync.errors import SyncError
from sync.runtime import Runtime
from sync.settings import UUID_PATTERN
from web.admin_base import current, runtime
from worker import queueing

log = logging.getLogger(__name__)

blueprint = Blueprint("actions", __name__)

# Job states after which a job's page stops reloading itself.
DONE_STATES = frozenset({"finished", "failed", "canceled", "stopped"})
RELOAD_SECONDS = 2


@blueprint.get("/actions")
def index() -> str:
    """The buttons, and the failed jobs with their reasons."""
    service = current()
    failed = queueing.failed_jobs(service.redis, service.settings)
    return render_template(
        "admin/actions.html", failed=failed, depth=service.jobs.depth()
    )


@blueprint.post("/actions/sync")
def sync_now() -> BaseResponse:
    job_id = current().jobs.enqueue_reconcile(dry_run=False, source="admin")
    log.info("admin: reconcile queued as job %s", job_id)
    flash(f"A sync of every tenant is queued as job {job_id}.", "ok")
    return redirect(url_for("admin.actions.job", job_id=job_id))


@blueprint.post("/actions/dry-run")
def dry_run() -> BaseResponse:
    job_id = current().jobs.enqueue_reconcile(dry_run=True, source="admin")
    flash(f"A dry run is queued as job {job_id}; nothing will be written.", "ok")
    return redirect(url_for("admin.actions.job", job_id=job_id))


@blueprint.post("/actions/requeue")
def requeue() -> BaseResponse:
    """Give every failed job another run."""
    service = current()
    done = queueing.requeue_failed(service.redis, service.settings)
    log.info("admin: %d failed jobs requeued", len(done))
    flash(f"{len(done)} failed job{'' if len(done) == 1 else 's'} requeued.", "ok")
    return redirect(url_for("admin.actions.index"))


def _outcomes(result: Any) -> list[dict[str, Any]]:
    """Every tenant a run result names, changes first, as plain rows."""
    if not isinstance(result, dict):
        return []
    if "tenant_id" in result:
        # One tenant's upsert: its result is the outcome itself.
        return [result]
    found: list[dict[str, Any]] = []
    for group in ("changes", "failures", "skips"):
        items = result.get(group)
        if isinstance(items, list):
            found.extend(item for item in items if isinstance(item, dict))
    return found


@blueprint.get("/jobs/<job_id>")
def job(job_id: str) -> tuple[str, int, dict[str, str]]:
    """One job's state; once done, its result and planned changes."""
    report = current().jobs.report(job_id)
    if report is None:
        page = render_template("admin/job.html", job_id=job_id, report=None)
        return page, 404, {}
    done = report.get("state") in DONE_STATES
    page = render_template(
        "admin/job.html",
        job_id=job_id,
        report=report,
        done=done,
        outcomes=_outcomes(report.get("result")),
    )
    # The browser asks again until the job is done; no script needed.
    return page, 200, {} if done else {"Refresh": str(RELOAD_SECONDS)}


@blueprint.get("/mapping")
def mapping() -> tuple[str, int]:
    """The active rules; with ``tenant_id``, that tenant mapped (no writes)."""
    tenant_id = request.args.get("tenant_id", "").strip().lower()
    preview: dict[str, Any] | None = None
    error = ""
    try:
        with runtime() as found:
            rules = found.mapping.describe()
            source = found.mapping.source
            if tenant_id:
                preview, error = _preview(found, tenant_id)
    except SyncError as exc:
        page = render_template("admin/mapping.html", error=str(exc), rules=[])
        return page, 502
    page = render_template(
        "admin/mapping.html",
        rules=rules,
        source=source,
        tenant_id=tenant_id,
        preview=preview,
        error=error,
    )
    return page, 200


def _preview(found: Runtime, tenant_id: str) -> tuple[dict[str, Any] | None, str]:
    """The tenant's mapped client and location, or why there is none."""
    if not UUID_PATTERN.match(tenant_id):
        return None, f"{tenant_id!r} is not a tenant id (a UUID)"
    tenant = found.acronis.get_tenant(tenant_id)
    if tenant is None:
        return None, f"Acronis has no tenant {tenant_id} under the partner"
    try:
        mapped = found.mapping.map_tenant(tenant)
    except SyncError as exc:
        return None, str(exc)
    preview = {
        "tenant_name": tenant.get("name"),
        "client": mapped.client,
        "location": mapped.location,
        "location_missing": mapped.location_missing,
    }
    return preview, ""
