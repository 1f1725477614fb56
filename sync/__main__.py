"""The command line: ``python -m sync reconcile | preview | check | links``.

``failed`` and ``requeue`` look after the jobs the queue gave up on;
``suggest``, ``link``, ``unlink``, ``exclude`` and ``include`` review an
AlgaPSA that already had clients before the first sync.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import redis
from click.core import ParameterSource
from dotenv import dotenv_values
from rich.console import Console

from sync import console as show
from sync import onboarding
from sync.checks import run_checks
from sync.errors import ConfigError, MappingError, PermanentError, SyncError
from sync.report import Outcome
from sync.runtime import Runtime, build_runtime
from sync.saved_settings import data_dir_of, reset_setup
from sync.settings import UUID_PATTERN, Settings, load_settings, merged_environment
from worker.queueing import failed_jobs, requeue_failed

EXIT_FAILED = 1
EXIT_CONFIG = 2

out = Console(soft_wrap=True)
err = Console(stderr=True)


def read_environment(env_file: Path | None) -> dict[str, str]:
    """The process environment over the values in ``env_file`` (when it exists)."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update(
            {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        )
    values.update(os.environ)
    return values


def load_runtime(ctx: click.Context) -> Runtime:
    environ: dict[str, str] = ctx.obj["environ"]
    try:
        settings = load_settings(environ)
        _configure_logging(settings.log_level)
        return build_runtime(settings)
    except (ConfigError, MappingError) as exc:
        err.print(f"[bold red]Cannot start:[/] {exc}", highlight=False)
        raise SystemExit(EXIT_CONFIG) from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _tenant_ids(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """Refuse anything but UUIDs before any remote call is made."""
    for value in values:
        if not UUID_PATTERN.match(value):
            raise click.BadParameter(
                f"{value!r} is not a tenant id: Acronis tenant ids are UUIDs"
            )
    return tuple(value.lower() for value in values)


def _uuid(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse an argument that is not a UUID, naming what it should be."""
    if not UUID_PATTERN.match(value):
        what = "an AlgaPSA client" if param.name == "client_id" else "an Acronis tenant"
        raise click.BadParameter(f"{value!r} is not {what} id: those are UUIDs")
    return value.lower()


@click.group()
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Settings file; variables already in the environment win.",
)
@click.pass_context
def cli(ctx: click.Context, env_file: Path) -> None:
    """Keep AlgaPSA clients in step with Acronis customer tenants."""
    given = ctx.get_parameter_source("env_file") is not ParameterSource.DEFAULT
    if given and not env_file.is_file() and str(env_file) != os.devnull:
        raise click.BadParameter(f"{env_file} does not exist", param_hint="--env-file")
    ctx.obj = {"environ": read_environment(env_file)}


@cli.command()
@click.option("--dry-run", is_flag=True, help="Plan and report; write nothing.")
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    callback=_tenant_ids,
    help="Only this tenant id (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def reconcile(
    ctx: click.Context, dry_run: bool, tenants: tuple[str, ...], as_json: bool
) -> None:
    """Create and update AlgaPSA clients so they match Acronis."""
    runtime = load_runtime(ctx)
    dry_run = dry_run or runtime.settings.dry_run
    with show.progress_bar(err, enabled=not as_json) as bar:
        advance: Callable[[Outcome], None] | None = None
        if bar is not None:
            task = bar.add_task("syncing tenants", total=None)

            def advance(outcome: Outcome) -> None:
                bar.advance(task)

        summary = runtime.engine().reconcile(
            dry_run=dry_run, tenant_ids=tenants, progress=advance
        )
    if as_json:
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        show.show_summary(out, summary)
    ctx.exit(0 if summary.ok else EXIT_FAILED)


@cli.command()
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    callback=_tenant_ids,
    help="Only this tenant id (repeatable).",
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Plans to show.",
)
@click.option(
    "--offset",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Plans to pass over.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plans as JSON.")
@click.pass_context
def preview(
    ctx: click.Context,
    tenants: tuple[str, ...],
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Show the mapped payloads and planned actions; write nothing."""
    runtime = load_runtime(ctx)
    plans = runtime.engine().plan(tenants)
    page = plans[offset : offset + limit]
    if as_json:
        document: dict[str, Any] = {
            "total": len(plans),
            "offset": offset,
            "plans": [show.plan_to_dict(plan) for plan in page],
        }
        click.echo(json.dumps(document, ensure_ascii=False, default=str))
    else:
        show.show_plans(out, page, len(plans))


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check each setting, fetch an Acronis token and read AlgaPSA once."""
    try:
        results = run_checks(merged_environment(ctx.obj["environ"]))
    except ConfigError as exc:
        err.print(f"[bold red]Cannot start:[/] {exc}", highlight=False)
        raise SystemExit(EXIT_CONFIG) from None
    for result in results:
        mark = "[green]pass[/]" if result.ok else "[red]FAIL[/]"
        out.print(f"{mark}  {result.name}: ", end="")
        out.print(result.detail, markup=False, highlight=False)
    ctx.exit(0 if all(result.ok for result in results) else EXIT_FAILED)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the links as JSON.")
@click.pass_context
def links(ctx: click.Context, as_json: bool) -> None:
    """List which AlgaPSA client each Acronis tenant is linked to."""
    runtime = load_runtime(ctx)
    known = runtime.links.all().values()
    if as_json:
        click.echo(json.dumps([asdict(link) for link in known], ensure_ascii=False))
    else:
        show.show_links(out, known)


def _queue_redis(ctx: click.Context) -> tuple[redis.Redis, Settings]:
    runtime = load_runtime(ctx)
    if runtime.redis is None:
        err.print("[bold red]Redis does not answer:[/] check REDIS_URL")
        raise SystemExit(EXIT_CONFIG)
    return runtime.redis, runtime.settings


@cli.command()
@click.pass_context
def failed(ctx: click.Context) -> None:
    """List the jobs that failed for good: id, tenant, reason and when."""
    connection, settings = _queue_redis(ctx)
    jobs = failed_jobs(connection, settings)
    if not jobs:
        out.print("No failed jobs.", highlight=False)
    for job in jobs:
        tenant = job.tenant_id or "-"
        out.print(f"{job.id}  {tenant}  {job.ended_at}  ", end="", highlight=False)
        out.print(job.reason, markup=False, highlight=False)


@cli.command()
@click.option("--all", "everything", is_flag=True, help="Requeue every failed job.")
@click.argument("job_ids", nargs=-1)
@click.pass_context
def requeue(ctx: click.Context, everything: bool, job_ids: tuple[str, ...]) -> None:
    """Put failed jobs back on the queue: the ones named, or --all."""
    if everything == bool(job_ids):
        raise click.UsageError("name the jobs to requeue, or pass --all")
    connection, settings = _queue_redis(ctx)
    done = requeue_failed(connection, settings, None if everything else list(job_ids))
    out.print(f"requeued {len(done)} job(s)", highlight=False)
    ctx.exit(0 if everything or len(done) == len(job_ids) else EXIT_FAILED)


@cli.command()
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Tenants to show; all of them when not given.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the review as JSON.")
@click.pass_context
def suggest(ctx: click.Context, limit: int | None, as_json: bool) -> None:
    """List the tenants the next sync would create a client for, with look-alikes."""
    runtime = load_runtime(ctx)
    with refusals():
        suggestions = onboarding.review(runtime)
    shown = suggestions[:limit]
    if as_json:
        document = {
            "total": len(suggestions),
            "suggestions": [suggestion.to_dict() for suggestion in shown],
        }
        click.echo(json.dumps(document, ensure_ascii=False))
    else:
        _show_suggestions(shown, len(suggestions))


def _show_suggestions(suggestions: list[onboarding.Suggestion], total: int) -> None:
    out.print(f"The next sync would create a client for {total} tenant(s).")
    for suggestion in suggestions:
        out.print(show.cell(f"{suggestion.tenant_id}  {suggestion.client_name!r}"))
        for candidate in suggestion.candidates:
            line = (
                f"    {candidate.score:>3}  {candidate.client_id}  {candidate.name!r}"
            )
            out.print(show.cell(line))
        if not suggestion.candidates:
            out.print("    no similar unlinked client: it would be created")
    if len(suggestions) < total:
        out.print(f"… and {total - len(suggestions)} more (raise --limit)")
    out.print(
        "Link one with `python -m sync link TENANT CLIENT`, keep one out with "
        "`python -m sync exclude TENANT`, then set SYNC_LINK_ONLY=false to create "
        "the rest.",
        highlight=False,
    )


def _onboarding_runtime(ctx: click.Context) -> Runtime:
    """A runtime whose link store outlives this command: Redis is required."""
    runtime = load_runtime(ctx)
    if runtime.redis is None:
        err.print(
            "[bold red]Redis does not answer:[/] links and exclusions made here "
            "must outlive this command; check REDIS_URL"
        )
        raise SystemExit(EXIT_CONFIG)
    return runtime


@contextmanager
def refusals() -> Iterator[None]:
    """Say why a command did nothing and exit 1; a remote may recover, a refusal not."""
    try:
        yield
    except SyncError as exc:
        label = "Refused" if isinstance(exc, PermanentError) else "Failed, try again"
        err.print(f"[bold red]{label}:[/] ", end="")
        # Unwrapped, so that a log or a script sees the message on one line.
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(EXIT_FAILED) from None


@cli.command()
@click.argument("tenant_id", callback=_uuid)
@click.argument("client_id", callback=_uuid)
@click.pass_context
def link(ctx: click.Context, tenant_id: str, client_id: str) -> None:
    """Link tenant TENANT_ID to the existing AlgaPSA client CLIENT_ID."""
    runtime = _onboarding_runtime(ctx)
    with refusals():
        onboarding.link_by_hand(runtime, tenant_id, client_id)
    out.print(
        f"Linked tenant {tenant_id} to AlgaPSA client {client_id}. The next sync "
        "brings its fields in step and adds the tenant id to its notes.",
        highlight=False,
    )


@cli.command()
@click.argument("tenant_id", callback=_uuid)
@click.pass_context
def unlink(ctx: click.Context, tenant_id: str) -> None:
    """Drop the link of tenant TENANT_ID; its AlgaPSA client is not touched."""
    runtime = _onboarding_runtime(ctx)
    with refusals():
        removed = onboarding.unlink(runtime, tenant_id)
    out.print(
        f"Unlinked tenant {tenant_id} from AlgaPSA client {removed.client_id}. "
        "A client whose notes still carry the tenant id is linked again by the "
        "next sync: remove that line in AlgaPSA, or exclude the tenant.",
        highlight=False,
    )


@cli.command()
@click.argument("tenant_id", callback=_uuid)
@click.pass_context
def exclude(ctx: click.Context, tenant_id: str) -> None:
    """Keep tenant TENANT_ID out of every sync until it is included again."""
    runtime = _onboarding_runtime(ctx)
    with refusals():
        added = onboarding.exclude(runtime, tenant_id)
    state = "is now" if added else "was already"
    out.print(f"Tenant {tenant_id} {state} excluded from the sync.", highlight=False)


@cli.command()
@click.argument("tenant_id", callback=_uuid)
@click.pass_context
def include(ctx: click.Context, tenant_id: str) -> None:
    """Let the excluded tenant TENANT_ID be synced again."""
    runtime = _onboarding_runtime(ctx)
    with refusals():
        onboarding.include(runtime, tenant_id)
    out.print(f"Tenant {tenant_id} is synced again.", highlight=False)


@cli.command("reset-setup")
@click.pass_context
def reset_setup_command(ctx: click.Context) -> None:
    """Forget the settings saved by the setup, so that /setup opens again."""
    data_dir = data_dir_of(ctx.obj["environ"])
    if reset_setup(data_dir):
        out.print(
            f"Removed the saved settings in {data_dir}: the setup at /setup is "
            "open again. Settings in the environment are unchanged.",
            highlight=False,
        )
    else:
        out.print(f"Nothing to reset: no saved settings in {data_dir}.")


if __name__ == "__main__":
    cli(prog_name="python -m sync")
