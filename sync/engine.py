"""Reconcile: read both sides in bulk, plan every tenant, write only what differs.

The engine is the one place where plans meet the remotes. It reads every
tenant under the partner and every AlgaPSA client once, asks the planner what
each tenant needs, and applies the plans that need a write on a small pool of
threads. One tenant's failure is recorded and reported; it never stops the
others. A dry run plans and reports, and writes nothing anywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sync.acronis import AcronisClient
from sync.alga import AlgaClient
from sync.errors import Conflict, LinkConflict, SyncError
from sync.http import CallCounter
from sync.links import LOCATION_PRESENT, Link, LinkStore
from sync.mapping import Mapping as FieldMapping
from sync.planner import Action, Plan, PlanContext, plan_all
from sync.report import Outcome, RunSummary
from sync.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[Outcome], None]


class Engine:
    """Plans and applies the sync of Acronis customer tenants to AlgaPSA clients."""

    def __init__(
        self,
        settings: Settings,
        *,
        acronis: AcronisClient,
        alga: AlgaClient,
        links: LinkStore,
        mapping: FieldMapping,
        counter: CallCounter,
    ) -> None:
        self.settings = settings
        self.acronis = acronis
        self.alga = alga
        self.links = links
        self.mapping = mapping
        self.counter = counter
        self._tenants: dict[str, dict[str, Any]] = {}
        self._known: dict[str, Link] = {}

    def plan(
        self,
        tenant_ids: Sequence[str] = (),
        *,
        clients: dict[str, dict[str, Any]] | None = None,
    ) -> list[Plan]:
        """Read both sides and plan every customer tenant (or only ``tenant_ids``).

        ``clients``, every AlgaPSA client by id, spares reading them again for
        a caller that already has them.
        """
        tenants = self._read_tenants(tenant_ids)
        if clients is None:
            clients = {c["client_id"]: c for c in self.alga.list_clients()}
        self._known = self.links.all()
        self._tenants = {tenant["id"]: tenant for tenant in tenants}
        plans = plan_all(tenants, self.mapping, self._context(clients, self._known))
        missing = sorted(set(tenant_ids) - self._tenants.keys())
        return plans + [_not_found(tenant_id) for tenant_id in missing]

    def _context(
        self, clients: dict[str, dict[str, Any]], links: Mapping[str, Link]
    ) -> PlanContext:
        return PlanContext(
            clients=clients,
            links={tenant: link.client_id for tenant, link in links.items()},
            key_field=self.settings.alga_key_field,
            disabled_policy=self.settings.disabled_policy,
            deleted_policy=self.settings.deleted_policy,
            excluded=frozenset(self.links.excluded()),
            own_names=frozenset(t for t, link in links.items() if link.keep_name),
            link_only=self.settings.link_only,
        )

    def plan_one(self, tenant_id: str) -> Plan | None:
        """Plan one tenant, reading only its linked client when the link holds.

        Without a usable link the tenant's client may be anywhere (a lost link,
        a client typed in by hand), so every client is read, as in a reconcile.
        Returns None when Acronis has no such tenant.
        """
        tenant = self.acronis.get_tenant(tenant_id)
        if tenant is None:
            return None
        link = self.links.get(tenant_id)
        client = self.alga.get_client(link.client_id) if link else None
        if link is not None and client is not None:
            clients = {client["client_id"]: client}
            self._known = {tenant_id: link}
        else:
            clients = {c["client_id"]: c for c in self.alga.list_clients()}
            self._known = self.links.all()
        context = self._context(clients, self._known)
        self._tenants = {tenant_id: tenant}
        (plan,) = plan_all([tenant], self.mapping, context)
        return plan

    def upsert_tenant(self, tenant_id: str, *, dry_run: bool = False) -> Outcome:
        """Bring one tenant's client in step; raise SyncError when a call fails.

        Unlike a reconcile, which reports failures in its summary, this raises,
        so that a job queue can retry what may succeed later.
        """
        plan = self.plan_one(tenant_id)
        if plan is None:
            return Outcome(
                tenant_id, "", "skipped", "Acronis has no such tenant (deleted?)"
            )
        if dry_run:
            return Outcome.from_plan(plan, dry_run=True)
        if plan.action in (Action.CONFLICT, Action.INVALID):
            raise LinkConflict(plan.reason, tenant_id=tenant_id)
        return self._apply(plan)

    def reconcile(
        self,
        *,
        dry_run: bool = False,
        tenant_ids: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> RunSummary:
        """Bring AlgaPSA in step with Acronis and return what happened."""
        started = time.monotonic()
        summary = RunSummary(dry_run=dry_run)
        try:
            plans = self.plan(tenant_ids)
        except SyncError as exc:
            summary.abort(exc)
        else:
            summary.planned = len(plans)
            for outcome in self._apply_all(plans, dry_run):
                summary.add(outcome)
                if progress is not None:
                    progress(outcome)
        summary.finish(self.counter.by_method(), time.monotonic() - started)
        log.info("%s", summary.log_line())
        if not dry_run:
            self.links.save_run(summary.to_dict())
        return summary

    def _read_tenants(self, tenant_ids: Sequence[str]) -> list[dict[str, Any]]:
        if tenant_ids:
            tenants = self.acronis.get_tenants(tenant_ids)
        else:
            tenants = [
                t
                for t in self.acronis.list_tenants().tenants
                if t["kind"] == "customer"
            ]
        # The oldest tenant keeps a contested name; later ones are the conflicts.
        return sorted(tenants, key=lambda t: (t.get("created_at") or "", t["id"]))

    def _apply_all(self, plans: Sequence[Plan], dry_run: bool) -> Iterable[Outcome]:
        if dry_run:
            yield from (Outcome.from_plan(plan, dry_run=True) for plan in plans)
            return
        quick = [plan for plan in plans if not self.has_work(plan)]
        slow = [plan for plan in plans if self.has_work(plan)]
        yield from (self._apply_safely(plan) for plan in quick)
        with ThreadPoolExecutor(self.settings.write_concurrency) as pool:
            yield from pool.map(self._apply_safely, slow)

    def has_work(self, plan: Plan) -> bool:
        """Whether applying a plan from the last ``plan()`` means any call."""
        return needs_work(plan, self._known.get(plan.tenant_id))

    def _apply_safely(self, plan: Plan) -> Outcome:
        try:
            return self._apply(plan)
        except SyncError as exc:
            return self._failed(plan, str(exc))
        except Exception as exc:  # one tenant's bug must not stop the others
            log.exception("tenant %s: unexpected error", plan.tenant_id)
            return self._failed(plan, f"unexpected error: {type(exc).__name__}: {exc}")

    def _apply(self, plan: Plan) -> Outcome:
        if plan.action is Action.CREATE:
            return self._create(plan)
        if plan.action is Action.UPDATE:
            assert plan.client_id is not None
            self.alga.update_client(plan.client_id, plan.body)
            return self._record(plan, plan.client_id, "updated")
        if plan.action is Action.UNCHANGED and plan.client_id is not None:
            return self._record(plan, plan.client_id, "unchanged")
        return Outcome.from_plan(plan)

    def _create(self, plan: Plan) -> Outcome:
        try:
            client = self.alga.create_client(plan.body)
        except Conflict:
            return self._adopt_existing(plan)
        outcome = self._record(plan, client["client_id"], "created")
        log.debug("tenant %s: created client %s", plan.tenant_id, client["client_id"])
        return outcome

    def _adopt_existing(self, plan: Plan) -> Outcome:
        """AlgaPSA already has a client of this name: link it, never make a variant."""
        name = plan.body["client_name"]
        client = self.alga.find_by_exact_name(name)
        if client is None:
            raise Conflict(
                f"AlgaPSA refused the name {name!r} as taken, yet no client has "
                "exactly that name; rename one of them in AlgaPSA",
                tenant_id=plan.tenant_id,
                service="alga",
                status=409,
            )
        replanned = self._replan(plan.tenant_id, client)
        if replanned.action is Action.UPDATE:
            self.alga.update_client(client["client_id"], replanned.body)
            return self._record(replanned, client["client_id"], "updated")
        return self._record(replanned, client["client_id"], "unchanged")

    def _replan(self, tenant_id: str, client: dict[str, Any]) -> Plan:
        """Plan one tenant again against ``client``, linked to it by name."""
        context = self._context({client["client_id"]: client}, {})
        (plan,) = plan_all([self._tenants[tenant_id]], self.mapping, context)
        if plan.client_id != client["client_id"]:
            raise LinkConflict(
                f"client {client['client_id']} has this tenant's name but cannot be "
                f"linked to it: {plan.reason}",
                tenant_id=tenant_id,
            )
        return plan

    def _record(self, plan: Plan, client_id: str, outcome: str) -> Outcome:
        """Claim the link, make sure the location exists, save what was done."""
        previous = self.links.get(plan.tenant_id)
        link = previous or Link(tenant_id=plan.tenant_id, client_id=client_id)
        if link.client_id != client_id:
            link = Link(tenant_id=plan.tenant_id, client_id=client_id)
        location = self._ensure_location(plan, client_id, link.location)
        updated = link.with_outcome(
            outcome, fingerprint=plan.fingerprint, location=location
        )
        if previous is None or _differs(previous, updated):
            self.links.claim(updated)
        return Outcome.from_plan(plan, result=outcome, client_id=client_id)

    def _ensure_location(self, plan: Plan, client_id: str, known: str) -> str:
        """Create the client's location once; AlgaPSA cannot update one later."""
        if plan.location is None or known == LOCATION_PRESENT:
            return known
        if plan.action is not Action.CREATE and self.alga.list_locations(client_id):
            return LOCATION_PRESENT
        self.alga.create_location(client_id, plan.location)
        return LOCATION_PRESENT

    def _failed(self, plan: Plan, reason: str) -> Outcome:
        log.warning("tenant %s: failed: %s", plan.tenant_id, reason)
        link = self.links.get(plan.tenant_id)
        if link is not None:
            self.links.claim(link.with_outcome("failed", reason))
        return Outcome.from_plan(plan, result="failed", reason=reason)


def _not_found(tenant_id: str) -> Plan:
    return Plan(
        tenant_id=tenant_id,
        tenant_name="",
        action=Action.INVALID,
        reason="Acronis has no tenant with this id under the partner",
    )


def needs_work(plan: Plan, link: Link | None) -> bool:
    """Whether applying ``plan`` means any call: a write, or a link to record.

    A tenant that is unchanged, already linked, with its location known,
    needs nothing at all; that is what makes a no-op sync cheap.
    """
    if plan.action in (Action.CREATE, Action.UPDATE):
        return True
    if plan.action is not Action.UNCHANGED:
        return False
    if plan.recovers_link or link is None or link.outcome == "failed":
        return True
    return plan.location is not None and link.location != LOCATION_PRESENT


def _differs(old: Link, new: Link) -> bool:
    """Whether ``new`` says more than a fresh timestamp on ``old``."""
    return (old.client_id, old.fingerprint, old.location, old.outcome, old.error) != (
        new.client_id,
        new.fingerprint,
        new.location,
        new.outcome,
        new.error,
    )
