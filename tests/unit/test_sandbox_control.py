"""The sandbox's control routes, fault injection, call counts and server."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from sandbox import create_app, serve_in_thread
from sandbox.data import partner_root_id
from sandbox.state import Options, SandboxState

ALGA = "/alga/api/v1"
ACRONIS = "/acronis/api/2"
KEY = {"x-api-key": "sandbox-alga-key"}
CREDENTIALS = ("sandbox-client", "sandbox-secret")


@pytest.fixture
def state():
    return SandboxState(Options(tenants=12, seed=21))


@pytest.fixture
def client(state):
    return create_app(state).test_client()


def token(client: FlaskClient) -> dict[str, str]:
    form = {"grant_type": "client_credentials"}
    answer: Any = client.post(f"{ACRONIS}/idp/token", data=form, auth=CREDENTIALS)
    return {"Authorization": f"Bearer {answer.json['access_token']}"}


def new_client(client: FlaskClient, name: str) -> Any:
    body = {"client_name": name, "billing_cycle": "monthly"}
    return client.post(f"{ALGA}/clients", json=body, headers=KEY)


def test_stats_count_route_templates_and_writes(client, state):
    auth = token(client)
    client.get(f"{ACRONIS}/tenants?subtree_root_id={state.root_id}", headers=auth)
    client.get(f"{ACRONIS}/tenants?subtree_root_id={state.root_id}", headers=auth)
    made = new_client(client, "Counted").json["data"]["client_id"]
    client.put(f"{ALGA}/clients/{made}", json={"notes": "n"}, headers=KEY)
    client.get(f"{ALGA}/clients/not-a-uuid", headers=KEY)
    client.get("/_sandbox/acronis/tenants")

    stats = client.get("/_sandbox/stats").json

    assert stats == {
        "services": {
            "acronis": {"POST /idp/token": 1, "GET /tenants": 2},
            "alga": {
                "POST /clients": 1,
                "PUT /clients/{id}": 1,
                "GET /clients/{id}": 1,
            },
        },
        "total": 6,
        "writes": {"acronis": 0, "alga": 2},
    }
    client.post("/_sandbox/stats/reset")
    assert client.get("/_sandbox/stats").json["total"] == 0


def test_fault_matches_method_path_and_body_a_number_of_times(client):
    fault = {
        "service": "alga",
        "method": "POST",
        "path": "^/clients$",
        "body_contains": "Broken",
        "status": 500,
        "times": 1,
    }
    assert client.post("/_sandbox/faults", json=fault).status_code == 201

    broken = new_client(client, "Broken Co")
    fine = new_client(client, "Fine Co")
    healed = new_client(client, "Broken Co")

    assert broken.status_code == 500
    assert broken.json["error"]["code"] == "INTERNAL_ERROR"
    assert fine.status_code == healed.status_code == 201


def test_fault_on_acronis_uses_its_error_shape_until_cleared(client, state):
    fault = {
        "service": "acronis",
        "path": "^/tenants",
        "status": 503,
        "times": None,
        "retry_after": 2,
    }
    client.post("/_sandbox/faults", json=fault)
    auth = token(client)

    first = client.get(f"{ACRONIS}/tenants/{state.root_id}", headers=auth)
    second = client.get(f"{ACRONIS}/tenants/{state.root_id}", headers=auth)
    client.delete("/_sandbox/faults")
    cleared = client.get(f"{ACRONIS}/tenants/{state.root_id}", headers=auth)

    assert first.status_code == second.status_code == 503
    assert set(first.json["error"]) == {
        "code",
        "domain",
        "message",
        "details",
        "context",
    }
    assert first.headers["Retry-After"] == "2"
    assert cleared.status_code == 200


def test_fail_rate_is_random_but_repeatable():
    def statuses() -> list[int]:
        app = create_app(Options(tenants=1, seed=8, fail_rate=0.3))
        client = app.test_client()
        return [
            client.get(f"{ALGA}/clients", headers=KEY).status_code for _ in range(60)
        ]

    first = statuses()

    assert first == statuses()
    assert first.count(503) in range(8, 30)
    assert set(first) == {200, 503}


def test_config_changes_knobs_live(client):
    client.post("/_sandbox/config", json={"latency_ms": 60, "enforce_rate_limit": True})
    started = time.perf_counter()
    slow = new_client(client, "Slow")
    waited = time.perf_counter() - started
    control_started = time.perf_counter()
    client.get("/_sandbox/stats")
    control_waited = time.perf_counter() - control_started

    assert slow.status_code == 201
    assert waited >= 0.06
    assert control_waited < 0.05
    assert client.get("/_sandbox/info").json["options"]["enforce_rate_limit"] is True


def test_control_tenants_create_patch_and_delete(client, state):
    made = client.post("/_sandbox/acronis/tenants", json={"name": "Added Ltd"})
    tenant = made.json
    patched = client.patch(
        f"/_sandbox/acronis/tenants/{tenant['id']}",
        json={"name": "Renamed Ltd", "contact": {"email": "x@y.example"}},
    ).json
    deleted = client.patch(
        f"/_sandbox/acronis/tenants/{tenant['id']}", json={"deleted": True}
    )
    listed = client.get("/_sandbox/acronis/tenants").json

    assert made.status_code == 201
    assert tenant["parent_id"] == state.root_id and tenant["kind"] == "customer"
    assert patched["version"] == tenant["version"] + 1
    assert patched["contact"]["email"] == "x@y.example"
    assert deleted.json["deleted_at"] is not None
    assert any(item["id"] == tenant["id"] for item in listed)


def test_control_clients_round_trip(client):
    made = client.post(
        "/_sandbox/alga/clients",
        json={"client_name": "Direct", "billing_cycle": "annually"},
    )
    client_id = made.json["client_id"]
    patched = client.patch(f"/_sandbox/alga/clients/{client_id}", json={"notes": "n"})
    invalid = client.post("/_sandbox/alga/clients", json={"client_name": "No Cycle"})
    every = client.get("/_sandbox/alga/clients").json
    removed = client.delete(f"/_sandbox/alga/clients/{client_id}")

    assert made.status_code == 201 and len(made.json) == 34
    assert patched.json["notes"] == "n"
    assert invalid.status_code == 400
    assert [c["client_name"] for c in every] == ["Direct"]
    assert removed.status_code == 204
    assert client.get("/_sandbox/alga/clients").json == []
    assert client.get("/_sandbox/stats").json["total"] == 0


def test_served_on_loopback_copes_with_concurrent_clients():
    url, stop = serve_in_thread(Options(tenants=30, seed=2, latency_ms=20))
    try:
        with requests.Session() as session:

            def fetch(_):
                return session.get(f"{url}{ALGA}/clients", headers=KEY, timeout=10)

            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(fetch, range(40)))
            elapsed = time.perf_counter() - started
        stats = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
    finally:
        stop()

    assert {answer.status_code for answer in answers} == {200}
    assert stats["services"]["alga"]["GET /clients"] == 40
    # 40 calls of 20 ms each would take 0.8 s one after another.
    assert elapsed < 0.6


def test_print_env_names_the_seeds_partner():
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--port",
        "9123",
        "--seed",
        "5",
        "--print-env",
    ]
    repo = Path(__file__).parents[2]
    printed = subprocess.run(
        command, capture_output=True, text=True, check=True, cwd=repo
    ).stdout
    lines = dict(line.split("=", 1) for line in printed.splitlines())

    assert lines == {
        "ACRONIS_BASE_URL": "http://127.0.0.1:9123/acronis/api/2",
        "ACRONIS_CLIENT_ID": "sandbox-client",
        "ACRONIS_CLIENT_SECRET": "sandbox-secret",
        "ACRONIS_TENANT_ID": partner_root_id(5),
        "ALGA_BASE_URL": "http://127.0.0.1:9123/alga/api/v1",
        "ALGA_API_TOKEN": "sandbox-alga-key",
    }
