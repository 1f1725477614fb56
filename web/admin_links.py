"""``/admin/links``: every link, searchable and paged, with its actions.

The link store knows ids only; names come from one read of each remote per
page view. When a remote cannot be read the table still shows every link,
by id, and says why the names are missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from sync import onboarding
from sync.acronis import is_customer
from sync.errors import SyncError
from sync.links import Link
from sync.planner import Action, Plan
from web.admin_base import PAGE_SIZE, current, page_number, refused, runtime

log = logging.getLogger(__name__)

blueprint = Blueprint("links", __name__, url_prefix="/links")


@dataclass(frozen=True)
class Row:
    """One line of the table: a link and the names of both sides."""

    link: Link
    tenant_name: str
    client_name: str

    def matches(self, query: str) -> bool:
        words = (
            self.link.tenant_id,
            self.tenant_name,
            self.link.client_id,
            self.client_name,
        )
        return any(query in word.casefold() for word in words)


@dataclass(frozen=True)
class Page:
    """The rows of one page of a search, and where it sits among the others."""

    rows: list[Row]
    number: int
    pages: int
    total: int


def _names() -> tuple[dict[str, str], dict[str, str], str]:
    """Tenant and client names by id, and why they are missing if they are."""
    try:
        with runtime() as found:
            feed = found.acronis.list_tenants()
            tenants = {
                str(t["id"]): str(t.get("name") or "")
                for t in feed.tenants
                if is_customer(t)
            }
            clients = {
                str(c["client_id"]): str(c.get("client_name") or "")
                for c in found.alga.list_clients()
            }
    except SyncError as exc:
        log.warning("admin: names for the links page not read: %s", exc)
        return {}, {}, str(exc)
    return tenants, clients, ""


def search(rows: list[Row], query: str, number: int, size: int = PAGE_SIZE) -> Page:
    """The rows matching ``query`` (any part of an id or name), one page of them."""
    wanted = query.strip().casefold()
    hits = [row for row in rows if row.matches(wanted)] if wanted else rows
    pages = max(1, -(-len(hits) // size))
    number = min(number, pages)
    start = (number - 1) * size
    return Page(hits[start : start + size], number, pages, len(hits))


def _rows(
    links: dict[str, Link], tenants: dict[str, str], clients: dict[str, str]
) -> list[Row]:
    rows = [
        Row(link, tenants.get(tenant_id, ""), clients.get(link.client_id, ""))
        for tenant_id, link in links.items()
    ]
    return sorted(
        rows, key=lambda row: (row.tenant_name.casefold(), row.link.tenant_id)
    )


@blueprint.get("")
def index() -> str:
    """The table; ``q`` searches, ``page`` pages."""
    query = request.args.get("q", "")
    links = current().links.all()
    tenants, clients, problem = _names() if links else ({}, {}, "")
    found = search(
        _rows(links, tenants, clients), query, page_number(request.args.get("page"))
    )
    return render_template("admin/links.html", page=found, query=query, problem=problem)


def _back() -> BaseResponse:
    """To the page of the table the form was on."""
    query = request.form.get("q") or None
    page = request.form.get("page") or None
    return redirect(url_for("admin.links.index", q=query, page=page))


@blueprint.post("/<tenant_id>/sync")
def sync_now(tenant_id: str) -> BaseResponse:
    """Queue one tenant's upsert and say which job runs it."""
    try:
        job_id = current().jobs.enqueue_upsert(tenant_id, source="admin")
    except ValueError as exc:
        refused(exc, "Sync not queued")
        return _back()
    flash(f"Sync of tenant {tenant_id} queued as job {job_id}.", "ok")
    return _back()


@blueprint.post("/<tenant_id>/unlink")
def unlink(tenant_id: str) -> BaseResponse:
    """Forget the tenant's link; the next sync finds or creates its client anew."""
    try:
        with runtime() as found:
            removed = onboarding.unlink(found, tenant_id)
    except SyncError as exc:
        refused(exc, "Not unlinked")
        return _back()
    log.info("admin: tenant %s unlinked from client %s", tenant_id, removed.client_id)
    flash(f"Tenant {tenant_id} unlinked from client {removed.client_id}.", "ok")
    return _back()


def change_rows(plan: Plan) -> list[dict[str, Any]]:
    """The planned change field by field: what AlgaPSA has and what it would get."""
    if plan.action is Action.CREATE:
        return [
            {"field": name, "old": None, "new": value}
            for name, value in sorted(plan.body.items())
        ]
    return [
        {"field": change.field, "old": change.old, "new": change.new}
        for change in plan.changes
    ]


@blueprint.get("/<tenant_id>/change")
def show_change(tenant_id: str) -> tuple[str, int]:
    """What the next sync would do for one tenant; nothing is written."""
    try:
        with runtime() as found:
            plan = found.engine().plan_one(tenant_id)
    except SyncError as exc:
        page = render_template(
            "admin/change.html", tenant_id=tenant_id, plan=None, error=str(exc)
        )
        return page, 502
    if plan is None:
        error = f"Acronis has no tenant {tenant_id} under the partner"
        page = render_template(
            "admin/change.html", tenant_id=tenant_id, plan=None, error=error
        )
        return page, 404
    page = render_template(
        "admin/change.html", tenant_id=tenant_id, plan=plan, rows=change_rows(plan)
    )
    return page, 200
