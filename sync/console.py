"""How the command line shows summaries, plans and links to a person."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from sync.links import Link
from sync.planner import Plan
from sync.report import RESULTS, Outcome, RunSummary

MAX_LISTED = 20
DRY_RUN_LABELS = {
    "created": "would create",
    "updated": "would update",
    "failed": "would fail",
}


def cell(value: object) -> Text:
    """Text shown as it is: no markup, no terminal control characters."""
    text = "" if value is None else str(value)
    return Text("".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text))


def show_summary(console: Console, summary: RunSummary) -> None:
    """The totals table, API calls, and every failure with its reason."""
    title = "Dry run: nothing was written" if summary.dry_run else "Sync summary"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    labels = DRY_RUN_LABELS if summary.dry_run else {}
    for name in RESULTS:
        table.add_row(labels.get(name, name), str(summary.counts[name]))
    if summary.links_recovered:
        table.add_row("links recovered", str(summary.links_recovered))
    for service, methods in summary.calls.items():
        for method, count in methods.items():
            table.add_row(f"{service} {method} calls", str(count))
    table.add_row("writes to AlgaPSA", str(summary.alga_writes))
    table.add_row("duration", f"{summary.duration_seconds:.2f} s")
    console.print(table)

    if summary.error:
        console.print(f"[bold red]Sync aborted:[/] {summary.error}")
    changed = "Would change" if summary.dry_run else "Changed"
    _list_outcomes(console, changed, summary.changes)
    _list_outcomes(console, "Skipped", summary.skips)
    _list_outcomes(console, "Failed", summary.failures)


def _list_outcomes(console: Console, title: str, outcomes: Sequence[Outcome]) -> None:
    if not outcomes:
        return
    console.print(f"[bold]{title}:[/]")
    for outcome in outcomes[:MAX_LISTED]:
        console.print(
            cell(
                f"  {outcome.result:<9} {outcome.tenant_id}  {outcome.tenant_name!r}: "
                f"{outcome.reason}"
            )
        )
        for change in outcome.changes:
            console.print(
                cell(f"      {change.field}: {change.old!r} -> {change.new!r}")
            )
    if len(outcomes) > MAX_LISTED:
        console.print(f"  … and {len(outcomes) - MAX_LISTED} more (use --json)")


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "tenant_id": plan.tenant_id,
        "tenant_name": plan.tenant_name,
        "action": str(plan.action),
        "reason": plan.reason,
        "client_id": plan.client_id,
        "body": plan.body,
        "location": plan.location,
        "changes": [
            {"field": c.field, "old": c.old, "new": c.new} for c in plan.changes
        ],
    }


def show_plans(console: Console, plans: Sequence[Plan], total: int) -> None:
    table = Table(title=f"Planned actions ({len(plans)} of {total} tenants)")
    for column in ("tenant", "name", "action", "reason", "payload"):
        table.add_column(column, overflow="fold")
    for plan in plans:
        payload = json.dumps(plan.body, ensure_ascii=False) if plan.body else ""
        row = (plan.tenant_id, plan.tenant_name, plan.action, plan.reason, payload)
        table.add_row(*(cell(value) for value in row))
    console.print(table)


def show_links(console: Console, links: Iterable[Link]) -> None:
    table = Table(title="Links: Acronis tenant -> AlgaPSA client")
    for column in ("tenant", "client", "last outcome", "synced at", "error"):
        table.add_column(column, overflow="fold")
    for link in sorted(links, key=lambda item: item.tenant_id):
        row = (link.tenant_id, link.client_id, link.outcome, link.synced_at, link.error)
        table.add_row(*(cell(value) for value in row))
    console.print(table)


@contextmanager
def progress_bar(console: Console, enabled: bool) -> Iterator[Progress | None]:
    """A progress bar on a terminal; nothing when output goes to a file or pipe."""
    if not enabled or not console.is_terminal:
        yield None
        return
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("{task.description}", *columns, console=console) as progress:
        yield progress
