"""What a sync did, tenant by tenant and in total, for people and for machines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync.diff import FieldChange
from sync.errors import SyncError
from sync.planner import Action, Plan

RESULTS = ("created", "updated", "unchanged", "skipped", "failed")

_RESULT_OF_ACTION = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.UNCHANGED: "unchanged",
    Action.SKIP: "skipped",
    Action.CONFLICT: "failed",
    Action.INVALID: "failed",
}


@dataclass(frozen=True)
class Outcome:
    """What happened to one tenant (or, in a dry run, what would happen)."""

    tenant_id: str
    tenant_name: str
    result: str
    reason: str
    client_id: str | None = None
    changes: tuple[FieldChange, ...] = ()
    recovered_link: bool = False

    @classmethod
    def from_plan(
        cls,
        plan: Plan,
        *,
        dry_run: bool = False,
        result: str | None = None,
        reason: str | None = None,
        client_id: str | None = None,
    ) -> Outcome:
        return cls(
            tenant_id=plan.tenant_id,
            tenant_name=plan.tenant_name,
            result=result or _RESULT_OF_ACTION[plan.action],
            reason=reason or plan.reason,
            client_id=client_id or plan.client_id,
            changes=plan.changes,
            recovered_link=plan.recovers_link and not dry_run,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "result": self.result,
            "reason": self.reason,
            "client_id": self.client_id,
            "changes": [
                {"field": c.field, "old": c.old, "new": c.new} for c in self.changes
            ],
        }


@dataclass
class RunSummary:
    """Totals of one reconcile, the failures with their reasons, and the API calls."""

    dry_run: bool = False
    started_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    planned: int = 0
    links_recovered: int = 0
    failures: list[Outcome] = field(default_factory=list)
    changes: list[Outcome] = field(default_factory=list)
    skips: list[Outcome] = field(default_factory=list)
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    duration_seconds: float = 0.0
    error: str | None = None

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.result] += 1
        if outcome.recovered_link and outcome.result != "failed":
            self.links_recovered += 1
        if outcome.result == "failed":
            self.failures.append(outcome)
        elif outcome.result in ("created", "updated"):
            self.changes.append(outcome)
        elif outcome.result == "skipped":
            self.skips.append(outcome)

    def abort(self, error: SyncError) -> None:
        """The run could not read what it needs; nothing was planned or written."""
        self.error = str(error)

    def finish(self, calls: dict[str, dict[str, int]], duration: float) -> None:
        self.calls = calls
        self.duration_seconds = round(duration, 3)

    @property
    def ok(self) -> bool:
        return self.error is None and self.counts["failed"] == 0

    @property
    def alga_writes(self) -> int:
        """Calls that could change AlgaPSA; a no-op sync makes none."""
        methods = self.calls.get("alga", {})
        return sum(methods.get(method, 0) for method in ("POST", "PUT", "DELETE"))

    def log_line(self) -> str:
        counts = ", ".join(f"{name} {self.counts[name]}" for name in RESULTS)
        mode = "dry run" if self.dry_run else "sync"
        if self.error:
            return f"{mode} aborted: {self.error}"
        return f"{mode} finished in {self.duration_seconds:.1f} s: {counts}"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.counts,
            "calls": self.calls,
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "duration_seconds": self.duration_seconds,
            "links_recovered": self.links_recovered,
            "error": self.error,
            "failures": [outcome.to_dict() for outcome in self.failures],
            "changes": [outcome.to_dict() for outcome in self.changes],
            "skips": [outcome.to_dict() for outcome in self.skips],
        }
