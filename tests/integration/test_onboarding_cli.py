"""Onboarding an AlgaPSA that already has clients, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from sandbox.process import REPO
from tests.integration.conftest import Sandbox, run_sync

pytestmark = pytest.mark.integration

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def sync_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sync", "--env-file", os.devnull, *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, cwd=REPO, timeout=120
    )


def add_tenant(sandbox: Sandbox, name: str) -> dict[str, Any]:
    tenant: dict[str, Any] = sandbox.control("POST", "/acronis/tenants", {"name": name})
    return tenant


def add_client(sandbox: Sandbox, name: str, notes: str = "") -> dict[str, Any]:
    body = {"client_name": name, "billing_cycle": "monthly", "notes": notes}
    client: dict[str, Any] = sandbox.control("POST", "/alga/clients", body)
    return client


def client_by_id(sandbox: Sandbox, client_id: str) -> dict[str, Any]:
    return next(c for c in sandbox.clients() if c["client_id"] == client_id)


def suggestions(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    done = sync_command(env, "suggest", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["total"] == len(document["suggestions"])
    return {entry["tenant_id"]: entry for entry in document["suggestions"]}


@pytest.fixture
def onboarding(start_sandbox) -> tuple[Sandbox, dict[str, Any], dict[str, Any]]:
    """A sandbox in link-only mode, a tenant and the client an MSP typed for it."""
    sandbox = start_sandbox("--tenants", "6")
    sandbox.env["SYNC_LINK_ONLY"] = "true"
    tenant = add_tenant(sandbox, "Acme Ltd.")
    hand_made = add_client(sandbox, "ACME Limited", "VIP customer, call first")
    add_client(sandbox, "Zenith Systems")
    return sandbox, tenant, hand_made


def test_suggest_link_and_sync_adopt_the_hand_made_client(onboarding):
    sandbox, tenant, hand_made = onboarding
    clients_before = len(sandbox.clients())

    review = suggestions(sandbox.env)

    best = review[tenant["id"]]["candidates"][0]
    assert (best["client_id"], best["name"], best["score"]) == (
        hand_made["client_id"],
        "ACME Limited",
        100,
    )
    assert all(
        c["name"] != "Zenith Systems" for c in review[tenant["id"]]["candidates"]
    )
    writes = sandbox.alga_writes()

    linked = sync_command(sandbox.env, "link", tenant["id"], hand_made["client_id"])

    assert linked.returncode == 0, linked.stderr
    assert sandbox.alga_writes() == writes
    run = run_sync(sandbox.env)
    assert run.code == 0, run.stderr
    assert run.summary["created"] == 0
    assert len(sandbox.clients()) == clients_before
    client = client_by_id(sandbox, hand_made["client_id"])
    assert client["client_name"] == "ACME Limited"
    assert client["notes"].startswith("VIP customer, call first\n")
    assert tenant["id"] in client["notes"]
    assert tenant["id"] not in suggestions(sandbox.env)


def test_a_linked_client_stays_one_client_once_creating_is_allowed(onboarding):
    sandbox, tenant, hand_made = onboarding
    sync_command(sandbox.env, "link", tenant["id"], hand_made["client_id"])
    sandbox.env["SYNC_LINK_ONLY"] = "false"

    run = run_sync(sandbox.env)

    assert run.code == 0, run.stderr
    names = [c["client_name"] for c in sandbox.clients()]
    assert "Acme Ltd." not in names
    assert names.count("ACME Limited") == 1


def test_exclude_keeps_a_tenant_out_until_it_is_included(onboarding):
    sandbox, tenant, _ = onboarding
    sandbox.env["SYNC_LINK_ONLY"] = "false"

    excluded = sync_command(sandbox.env, "exclude", tenant["id"].upper())
    run = run_sync(sandbox.env)

    assert excluded.returncode == 0, excluded.stderr
    assert run.code == 0, run.stderr
    skip = next(s for s in run.summary["skips"] if s["tenant_id"] == tenant["id"])
    assert skip["reason"] == "excluded by an admin"
    assert "Acme Ltd." not in [c["client_name"] for c in sandbox.clients()]
    assert tenant["id"] not in suggestions(sandbox.env)

    included = sync_command(sandbox.env, "include", tenant["id"])
    again = run_sync(sandbox.env)

    assert included.returncode == 0, included.stderr
    assert again.summary["created"] == 1
    assert "Acme Ltd." in [c["client_name"] for c in sandbox.clients()]


def test_link_only_mode_creates_nothing_and_says_why(onboarding):
    sandbox, tenant, _ = onboarding

    run = run_sync(sandbox.env)

    assert run.code == 0, run.stderr
    assert run.summary["created"] == 0
    assert sandbox.alga_writes() == 0
    skip = next(s for s in run.summary["skips"] if s["tenant_id"] == tenant["id"])
    assert skip["reason"] == "link-only mode: review it with `python -m sync suggest`"


def test_hand_links_refuse_bad_input_and_say_why(onboarding):
    sandbox, tenant, hand_made = onboarding
    other = add_tenant(sandbox, "Beta Consulting")
    client_id = hand_made["client_id"]
    assert sync_command(sandbox.env, "link", tenant["id"], client_id).returncode == 0

    cases = [
        (("link", "acme", client_id), 2, "not an Acronis tenant id"),
        (("link", tenant["id"], "42"), 2, "not an AlgaPSA client id"),
        (("link", UNKNOWN, client_id), 1, "Acronis has no tenant"),
        (("link", other["id"], UNKNOWN), 1, "AlgaPSA has no client"),
        (
            ("link", other["id"], client_id),
            1,
            f"already linked to tenant {tenant['id']}",
        ),
        (("unlink", other["id"]), 1, "not linked to any AlgaPSA client"),
        (("exclude", UNKNOWN), 1, "Acronis has no tenant"),
        (("include", other["id"]), 1, "not excluded"),
    ]
    for args, code, message in cases:
        done = sync_command(sandbox.env, *args)
        assert (done.returncode, message in done.stderr) == (code, True), done.stderr

    assert sync_command(sandbox.env, "unlink", tenant["id"]).returncode == 0
    links = json.loads(sync_command(sandbox.env, "links", "--json").stdout)
    assert links == []
    assert sandbox.alga_writes() == 0
