"""The setup against a real sandbox: test both remotes, save, then sync from it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from sandbox.process import free_port
from tests.integration.conftest import Sandbox, run_sync
from web import create_app

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "a long admin password"
SETUP_TOKEN = "the integration tests' setup token"


@pytest.fixture
def sandbox(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox("--tenants", "6")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(data_dir: Path, redis_url: str, redis_prefix: str) -> FlaskClient:
    environ = {
        "DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "SYNC_REDIS_PREFIX": redis_prefix,
        "SETUP_TOKEN": SETUP_TOKEN,
    }
    app = create_app(redis=redis.Redis.from_url(redis_url), environ=environ)
    client = app.test_client()
    assert client.get("/setup", query_string={"token": SETUP_TOKEN}).status_code == 303
    return client


def form_of(sandbox: Sandbox, **changes: str) -> dict[str, str]:
    given = sandbox.settings
    return {
        "acronis_base_url": given["ACRONIS_BASE_URL"],
        "acronis_client_id": given["ACRONIS_CLIENT_ID"],
        "acronis_client_secret": given["ACRONIS_CLIENT_SECRET"],
        "acronis_tenant_id": given["ACRONIS_TENANT_ID"],
        "alga_base_url": given["ALGA_BASE_URL"],
        "alga_api_token": given["ALGA_API_TOKEN"],
        "sync_cron": "",
        "sync_timezone": "UTC",
        "admin_username": "admin",
        "admin_password": ADMIN_PASSWORD,
        "admin_password_again": ADMIN_PASSWORD,
        **changes,
    }


def token(client: FlaskClient) -> str:
    page = client.get("/setup").get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def probe(client: FlaskClient, remote: str, form: dict[str, str]) -> dict[str, Any]:
    answer = client.post(
        f"/setup/test/{remote}", data={**form, "csrf_token": token(client)}
    )
    assert answer.status_code == 200
    found: dict[str, Any] = answer.get_json()
    return found


def test_acronis_probe(client: FlaskClient, sandbox: Sandbox) -> None:
    found = probe(client, "acronis", form_of(sandbox))

    customers = len(sandbox.customers())
    assert found["ok"], found
    assert f"{customers} customer tenants" in found["message"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"acronis_client_secret": "wrong"}, "refused"),
        ({"acronis_tenant_id": str(uuid.uuid4())}, "sees no tenant"),
    ],
)
def test_acronis_probe_failures(
    client: FlaskClient, sandbox: Sandbox, change: dict[str, str], expected: str
) -> None:
    found = probe(client, "acronis", form_of(sandbox, **change))

    assert not found["ok"]
    assert expected in found["message"]


def test_acronis_probe_unreachable(client: FlaskClient, sandbox: Sandbox) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/2"

    found = probe(client, "acronis", form_of(sandbox, acronis_base_url=url))

    assert not found["ok"]
    assert found["message"]


def test_alga_probe(client: FlaskClient, sandbox: Sandbox) -> None:
    found = probe(client, "alga", form_of(sandbox))
    refused = probe(client, "alga", form_of(sandbox, alga_api_token="wrong-key"))

    assert found["ok"], found
    assert found["clients"] == len(sandbox.clients())
    assert not refused["ok"]
    assert "ALGA_API_TOKEN" in refused["message"]


def test_saved_settings_drive_a_sync(
    client: FlaskClient, sandbox: Sandbox, data_dir: Path
) -> None:
    form = form_of(sandbox, create_clients="y", csrf_token=token(client))
    saved = client.post("/setup", data=form)
    assert saved.status_code == 200, saved.get_data(as_text=True)

    # No remote setting in the environment: they come from DATA_DIR alone.
    env = {k: v for k, v in sandbox.env.items() if k not in sandbox.settings}
    env["DATA_DIR"] = str(data_dir)
    before = len(sandbox.clients())
    done = run_sync(env)

    assert done.code == 0, done.stderr
    assert done.summary["created"] == len(sandbox.customers())
    assert len(sandbox.clients()) == before + len(sandbox.customers())
