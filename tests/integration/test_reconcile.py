"""End to end: the real CLI against a sandbox process, with links in a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from sync.runtime import build_runtime
from sync.settings import Settings
from tests.integration.conftest import Sandbox, run_sync

pytestmark = pytest.mark.integration

TENANTS = "24"


def active(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Customers that should have a client: enabled and not deleted."""
    return [t for t in sandbox.customers() if t["enabled"] and t["deleted_at"] is None]


def clients_named(sandbox: Sandbox, name: str) -> list[dict[str, Any]]:
    return [c for c in sandbox.clients() if c["client_name"] == name.strip()]


def ascii_tenant(sandbox: Sandbox) -> dict[str, Any]:
    return next(
        t for t in active(sandbox) if t["name"].isascii() and len(t["name"]) < 60
    )


def test_first_run_creates_every_client_and_second_run_writes_nothing(start_sandbox):
    sandbox = start_sandbox("--tenants", TENANTS)
    expected = len(active(sandbox))

    first = run_sync(sandbox.env)
    assert first.code == 0, first.stderr
    assert first.summary["created"] == expected
    assert first.summary["failed"] == 0
    assert len(sandbox.clients()) == expected
    writes = sandbox.alga_writes()

    second = run_sync(sandbox.env)
    assert second.code == 0, second.stderr
    assert second.summary["unchanged"] == expected
    assert second.summary["created"] == second.summary["updated"] == 0
    assert second.summary["links_recovered"] == 0
    assert "POST" not in second.summary["calls"].get("alga", {})
    assert "PUT" not in second.summary["calls"].get("alga", {})
    assert sandbox.alga_writes() == writes


def test_a_rename_in_acronis_makes_exactly_one_update(start_sandbox):
    sandbox = start_sandbox("--tenants", TENANTS)
    assert run_sync(sandbox.env).code == 0
    tenant = ascii_tenant(sandbox)
    sandbox.control(
        "PATCH", f"/acronis/tenants/{tenant['id']}", {"name": "Renamed Ltd"}
    )
    writes = sandbox.alga_writes()

    run = run_sync(sandbox.env)

    assert run.code == 0, run.stderr
    assert run.summary["updated"] == 1
    assert sandbox.alga_writes() == writes + 1
    assert len(clients_named(sandbox, "Renamed Ltd")) == 1
    assert clients_named(sandbox, tenant["name"]) == []


def test_an_algapsa_edit_of_a_create_only_field_survives(start_sandbox):
    sandbox = start_sandbox("--tenants", TENANTS)
    assert run_sync(sandbox.env).code == 0
    tenant = ascii_tenant(sandbox)
    (client,) = clients_named(sandbox, tenant["name"])
    path = f"/alga/clients/{client['client_id']}"
    sandbox.control("PATCH", path, {"billing_cycle": "quarterly"})
    writes = sandbox.alga_writes()

    run = run_sync(sandbox.env)

    assert run.code == 0, run.stderr
    assert run.summary["updated"] == 0
    assert sandbox.alga_writes() == writes
    (after,) = clients_named(sandbox, tenant["name"])
    assert after["billing_cycle"] == "quarterly"


def test_an_algapsa_edit_of_a_synced_field_is_put_back(start_sandbox):
    sandbox = start_sandbox("--tenants", TENANTS)
    assert run_sync(sandbox.env).code == 0
    tenant = ascii_tenant(sandbox)
    (client,) = clients_named(sandbox, tenant["name"])
    sandbox.control("PATCH", f"/alga/clients/{client['client_id']}", {"notes": "x"})

    run = run_sync(sandbox.env)

    assert run.summary["updated"] == 1
    (after,) = clients_named(sandbox, tenant["name"])
    assert tenant["id"] in after["notes"]


def test_an_existing_client_with_the_same_name_is_linked_not_duplicated(
    start_sandbox,
):
    sandbox = start_sandbox("--tenants", TENANTS)
    tenant = ascii_tenant(sandbox)
    existing = sandbox.control(
        "POST",
        "/alga/clients",
        {"client_name": tenant["name"], "billing_cycle": "annually"},
    )

    run = run_sync(sandbox.env)

    assert run.code == 0, run.stderr
    assert run.summary["created"] == len(active(sandbox)) - 1
    (client,) = clients_named(sandbox, tenant["name"])
    assert client["client_id"] == existing["client_id"]
    assert client["billing_cycle"] == "annually"


def test_of_two_tenants_with_one_name_the_second_is_a_conflict(start_sandbox):
    sandbox = start_sandbox("--tenants", TENANTS)
    first = ascii_tenant(sandbox)
    twin = sandbox.control("POST", "/acronis/tenants", {"name": first["name"]})

    run = run_sync(sandbox.env)

    assert run.code == 1
    assert run.summary["failed"] == 1
    (failure,) = run.summary["failures"]
    assert failure["tenant_id"] == twin["id"]
    assert first["id"] in failure["reason"]
    assert len(clients_named(sandbox, first["name"])) == 1


def test_after_the_link_store_is_wiped_every_link_is_recovered(
    start_sandbox, redis_url, redis_prefix
):
    sandbox = start_sandbox("--tenants", TENANTS)
    expected = len(active(sandbox))
    assert run_sync(sandbox.env).code == 0
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"{redis_prefix}:*"):
        connection.delete(key)
    writes = sandbox.alga_writes()

    run = run_sync(sandbox.env)

    assert run.code == 0, run.stderr
    assert run.summary["created"] == 0
    assert run.summary["links_recovered"] == expected
    assert sandbox.alga_writes() == writes
    assert connection.hlen(f"{redis_prefix}:links") == expected


def test_a_dry_run_writes_nothing_anywhere(start_sandbox, redis_url, redis_prefix):
    sandbox = start_sandbox("--tenants", TENANTS)

    run = run_sync(sandbox.env, "--dry-run")

    assert run.code == 0, run.stderr
    assert run.summary["dry_run"] is True
    assert run.summary["created"] == len(active(sandbox))
    assert sandbox.alga_writes() == 0
    assert sandbox.clients() == []
    connection = redis.Redis.from_url(redis_url)
    assert list(connection.scan_iter(f"{redis_prefix}:link*")) == []


def test_a_failing_tenant_does_not_stop_the_others(start_sandbox):
    sandbox = start_sandbox("--tenants", TENANTS)
    broken = ascii_tenant(sandbox)
    fault = {
        "service": "alga",
        "method": "POST",
        "path": "^/clients$",
        "body_contains": broken["name"],
        "status": 400,
        "times": None,
    }
    sandbox.control("POST", "/faults", fault)

    run = run_sync(sandbox.env)

    assert run.code == 1
    assert run.summary["created"] == len(active(sandbox)) - 1
    (failure,) = run.summary["failures"]
    assert failure["tenant_id"] == broken["id"]
    assert "400" in failure["reason"]


def test_a_passing_outage_is_retried(start_sandbox):
    sandbox = start_sandbox("--tenants", TENANTS)
    tenant = ascii_tenant(sandbox)
    fault = {
        "service": "alga",
        "method": "POST",
        "path": "^/clients$",
        "body_contains": tenant["name"],
        "status": 503,
        "times": 2,
    }
    sandbox.control("POST", "/faults", fault)

    run = run_sync(sandbox.env)

    assert run.code == 0, run.stderr
    assert run.summary["created"] == len(active(sandbox))
    assert len(clients_named(sandbox, tenant["name"])) == 1


def test_a_client_created_meanwhile_is_adopted_on_409(
    start_sandbox, monkeypatch: pytest.MonkeyPatch
):
    sandbox = start_sandbox("--tenants", TENANTS)
    tenant = ascii_tenant(sandbox)
    runtime = build_runtime(Settings.from_env(sandbox.env))
    listing = runtime.alga.list_clients

    def list_then_race(**options: Any) -> list[dict[str, Any]]:
        clients = listing(**options)
        body = {"client_name": tenant["name"], "billing_cycle": "weekly"}
        sandbox.control("POST", "/alga/clients", body)
        return clients

    monkeypatch.setattr(runtime.alga, "list_clients", list_then_race)

    summary = runtime.engine().reconcile()

    assert summary.ok, summary.to_dict()
    assert summary.counts["created"] == len(active(sandbox)) - 1
    (client,) = clients_named(sandbox, tenant["name"])
    assert client["billing_cycle"] == "weekly"
    link = runtime.links.get(tenant["id"])
    assert link is not None
    assert link.client_id == client["client_id"]


def test_a_hand_made_client_keeps_its_notes_and_gains_the_tenant_id(start_sandbox):
    sandbox = start_sandbox("--tenants", TENANTS)
    tenant = ascii_tenant(sandbox)
    hand_made = {
        "client_name": tenant["name"],
        "billing_cycle": "monthly",
        "notes": "VIP customer, call first",
    }
    sandbox.control("POST", "/alga/clients", hand_made)

    first = run_sync(sandbox.env)

    assert first.code == 0, first.stderr
    (client,) = clients_named(sandbox, tenant["name"])
    assert client["notes"].startswith("VIP customer, call first")
    assert tenant["id"] in client["notes"]
    writes = sandbox.alga_writes()

    second = run_sync(sandbox.env)

    assert second.code == 0, second.stderr
    assert second.summary["created"] == second.summary["updated"] == 0
    assert sandbox.alga_writes() == writes
