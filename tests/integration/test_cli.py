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


def test_an_unknown_tenant_id_is_a_failure_not_a_silent_success(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")
    unknown = "00000000-0000-4000-8000-000000000000"

    done = sync_command(sandbox.env, "reconcile", "--json", "--tenant", unknown)

    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["failed"] == 1
    assert summary["failures"][0]["tenant_id"] == unknown
    assert "no tenant" in summary["failures"][0]["reason"]


def test_a_tenant_id_in_capitals_is_found(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")
    tenant = next(t for t in sandbox.customers() if t["enabled"])

    done = sync_command(
        sandbox.env, "reconcile", "--json", "--tenant", tenant["id"].upper()
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] == 1


def test_check_refuses_a_customer_as_the_partner(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")
    customer = sandbox.customers()[0]
    env = {**sandbox.env, "ACRONIS_TENANT_ID": customer["id"]}

    done = sync_command(env, "check")

    assert done.returncode == 1
    assert "FAIL  Acronis partner tenant" in done.stdout
    assert "is not a partner" in done.stdout


def test_a_mapping_without_the_tenant_id_marker_is_refused(start_sandbox, tmp_path):
    sandbox = start_sandbox("--tenants", "5")
    text = (REPO / "mapping.yaml").read_text(encoding="utf-8")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(text.replace("tenant {id}", "tenant"), encoding="utf-8")
    env = {**sandbox.env, "MAPPING_FILE": str(mapping)}

    done = sync_command(env, "reconcile")

    assert done.returncode == 2
    assert "must carry the tenant id" in done.stderr
    assert sandbox.alga_writes() == 0


def test_a_named_env_file_that_does_not_exist_is_an_error(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")
    command = [sys.executable, "-m", "sync", "--env-file", "/nonexistent/.env"]

    done = subprocess.run(
        [*command, "links"], env=sandbox.env, capture_output=True, text=True
    )

    assert done.returncode == 2
    assert "/nonexistent/.env does not exist" in done.stderr


def test_check_never_prints_a_secret_setting(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")
    secrets = {
        "WEBHOOK_SECRET": "whsec_c2VjcmV0LXZhbHVlLWZvci10aGUtdGVzdC0xMjM0",
        "SYNC_API_TOKEN": "api-token-that-must-not-show",
        "ALGA_WEBHOOK_SECRET": "alga-hook-secret-that-must-not-show",
        "ADMIN_PASSWORD": "admin-password-that-must-not-show",
    }

    done = sync_command({**sandbox.env, **secrets}, "check")

    shown = done.stdout + done.stderr
    for name, value in secrets.items():
        assert f"pass  {name}: set" in shown
        assert value not in shown


def test_check_says_an_empty_secret_is_not_set(start_sandbox):
    sandbox = start_sandbox("--tenants", "5")

    done = sync_command({**sandbox.env, "WEBHOOK_SECRET": ""}, "check")

    assert "pass  WEBHOOK_SECRET: not set" in done.stdout
