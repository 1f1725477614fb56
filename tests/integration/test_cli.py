"""The command line as a user meets it: check, preview, links and bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandbox.process import REPO
from tests.integration.conftest import run_sync

pytestmark = pytest.mark.integration


def sync_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sync", "--env-file", os.devnull, *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_check_passes_against_working_remotes(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")

    done = sync_command(sandbox.env, "check")

    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("Acronis token", "Acronis partner tenant", "AlgaPSA read", "mapping"):
        assert f"pass  {name}" in done.stdout
    assert "sandbox-secret" not in done.stdout + done.stderr


def test_check_names_a_refused_secret_without_showing_it(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")
    env = {**sandbox.env, "ACRONIS_CLIENT_SECRET": "not-the-secret-42"}

    done = sync_command(env, "check")

    assert done.returncode == 1
    assert "FAIL  Acronis token" in done.stdout
    assert "ACRONIS_CLIENT_SECRET" in done.stdout
    assert "pass  AlgaPSA read" in done.stdout
    assert "not-the-secret-42" not in done.stdout + done.stderr


def test_a_missing_setting_stops_with_its_name_and_the_fix(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")
    env = {k: v for k, v in sandbox.env.items() if k != "ACRONIS_TENANT_ID"}

    done = sync_command(env, "reconcile")

    assert done.returncode == 2
    assert "ACRONIS_TENANT_ID is not set" in done.stderr
    assert "partner tenant" in done.stderr
    assert sandbox.alga_writes() == 0


def test_preview_shows_every_plan_and_writes_nothing(start_sandbox):
    sandbox = start_sandbox("--tenants", "12")
    customers = len(sandbox.customers())

    done = sync_command(sandbox.env, "preview", "--json", "--limit", "5")

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["total"] == customers
    assert len(document["plans"]) == 5
    first = document["plans"][0]
    assert first["action"] in {"create", "skip"}
    assert sandbox.alga_writes() == 0


def test_links_lists_what_a_sync_linked(start_sandbox):
    sandbox = start_sandbox("--tenants", "8")
    run = run_sync(sandbox.env)
    assert run.code == 0, run.stderr

    done = sync_command(sandbox.env, "links", "--json")

    links = json.loads(done.stdout)
    assert len(links) == run.summary["created"]
    client_ids = {client["client_id"] for client in sandbox.clients()}
    assert {link["client_id"] for link in links} == client_ids
