"""Admin pages that read the remotes, against a sandbox served on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import requests
from flask.testing import FlaskClient

from sandbox import Options, serve_in_thread
from sandbox.__main__ import env_lines
from sync.keys import Keys
from sync.links import Link, RedisLinkStore
from sync.saved_settings import SettingsStore
from web import create_app

from .test_admin import PASSWORD, ROOT, RecordingQueue, flashes, log_in, post

SEED = 7


class Remotes:
    """The sandbox's control routes."""

    def __init__(self, url: str) -> None:
        self.url = url

    def control(self, method: str, path: str, body: Any = None) -> Any:
        answer = requests.request(
            method, f"{self.url}/_sandbox{path}", json=body, timeout=10
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def add_tenant(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.control("POST", "/acronis/tenants", {"name": name})
        return found

    def add_client(self, name: str) -> dict[str, Any]:
        body = {"client_name": name, "billing_cycle": "monthly", "notes": ""}
        found: dict[str, Any] = self.control("POST", "/alga/clients", body)
        return found


@pytest.fixture
def remotes() -> Iterator[Remotes]:
    url, stop = serve_in_thread(Options(tenants=4, seed=SEED))
    try:
        yield Remotes(url)
    finally:
        stop()


@pytest.fixture
def environ(remotes: Remotes, tmp_path: Path) -> dict[str, str]:
    host, port = remotes.url.removeprefix("http://").split(":")
    pairs = (line.split("=", 1) for line in env_lines(host, int(port), SEED))
    return {
        **dict(pairs),
        "ADMIN_USERNAME": "boss",
        "ADMIN_PASSWORD": PASSWORD,
        "HTTP_MAX_ATTEMPTS": "1",
        "MAPPING_FILE": str(ROOT / "mapping.yaml"),
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def links(fake_redis: fakeredis.FakeRedis) -> RedisLinkStore:
    return RedisLinkStore(fake_redis, Keys("aas"))


@pytest.fixture
def admin(
    environ: dict[str, str],
    fake_redis: fakeredis.FakeRedis,
    links: RedisLinkStore,
    monkeypatch: pytest.MonkeyPatch,
) -> FlaskClient:
    # The runtime connects to Redis itself: hand it the fake one.
    monkeypatch.setattr("sync.runtime.connect_redis", lambda url: fake_redis)
    app = create_app(redis=fake_redis, environ=environ, jobs=RecordingQueue())
    client = app.test_client()
    assert log_in(client).status_code == 302
    return client


def test_onboarding_lists_a_look_alike_and_links_it(
    admin: FlaskClient, remotes: Remotes, links: RedisLinkStore
) -> None:
    tenant = remotes.add_tenant("Acme Ltd.")
    client = remotes.add_client("ACME Limited")

    page = admin.get("/admin/onboarding").text
    row = page.split(f'data-tenant-id="{tenant["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert f'value="{client["client_id"]}"' in row
    assert "ACME Limited" in row and "(100%" in row

    post(
        admin,
        f"/admin/onboarding/{tenant['id']}/link",
        "/admin/onboarding",
        client_id=client["client_id"],
    )

    linked = links.get(tenant["id"])
    assert linked is not None and linked.client_id == client["client_id"]
    after = admin.get("/admin/onboarding")
    assert f"is linked to client {client['client_id']}" in flashes(after)[0]
    assert f'data-tenant-id="{tenant["id"]}"' not in after.text.split("flashes")[1]


def test_onboarding_excludes_includes_and_accepts(
    admin: FlaskClient, remotes: Remotes, links: RedisLinkStore, fake_redis
) -> None:
    tenant = remotes.add_tenant("Zenith Systems")
    path = f"/admin/onboarding/{tenant['id']}"

    post(admin, f"{path}/exclude", "/admin/onboarding")
    assert tenant["id"] in links.excluded()
    page = admin.get("/admin/onboarding").text
    assert re.search(rf'data-test="excluded-row" data-tenant-id="{tenant["id"]}"', page)

    post(admin, f"{path}/include", "/admin/onboarding")
    assert tenant["id"] not in links.excluded()

    post(admin, f"{path}/create", "/admin/onboarding")
    assert fake_redis.sismember(Keys("aas").review_accepted, tenant["id"])
    assert 'data-test="accepted"' in admin.get("/admin/onboarding").text


def test_link_only_is_saved_beside_the_other_values(
    admin: FlaskClient, environ: dict[str, str]
) -> None:
    store = SettingsStore.from_environ(environ)
    store.save({"SYNC_TIMEZONE": "Europe/Berlin", "SYNC_LINK_ONLY": "true"})
    assert 'data-state="on"' in admin.get("/admin/onboarding").text

    post(admin, "/admin/onboarding/link-only", "/admin/onboarding", link_only="off")

    saved = store.load().values
    assert saved == {"SYNC_TIMEZONE": "Europe/Berlin", "SYNC_LINK_ONLY": "false"}
    assert 'data-state="off"' in admin.get("/admin/onboarding").text


def test_the_environment_overriding_link_only_is_named(
    environ: dict[str, str], fake_redis
) -> None:
    environ["SYNC_LINK_ONLY"] = "true"
    app = create_app(redis=fake_redis, environ=environ, jobs=RecordingQueue())
    client = app.test_client()
    log_in(client)

    assert 'id="link-only-env"' in client.get("/admin/onboarding").text


def test_show_change_gives_the_planned_fields_and_unlink_forgets_the_link(
    admin: FlaskClient, remotes: Remotes, links: RedisLinkStore
) -> None:
    tenant = remotes.add_tenant("Globex Corp")
    client = remotes.add_client("Globex Corp")
    links.claim(Link(tenant["id"], client["client_id"], outcome="updated"))

    listing = admin.get("/admin/links").text
    assert "Globex Corp" in listing and 'id="links-names-missing"' not in listing
    change = admin.get(f"/admin/links/{tenant['id']}/change")
    assert change.status_code == 200
    assert 'data-test="change-action">update<' in change.text
    assert 'data-test="change-row"' in change.text
    assert "notes" in change.text

    post(admin, f"/admin/links/{tenant['id']}/unlink", "/admin/links")
    assert links.get(tenant["id"]) is None
    missing = admin.get("/admin/links/8d7c6b5a-0000-4000-8000-000000000000/change")
    assert missing.status_code == 404


def test_the_mapping_page_lists_rules_and_previews_one_tenant(
    admin: FlaskClient, remotes: Remotes
) -> None:
    tenant = remotes.add_tenant("Initech GmbH")
    before = remotes.control("GET", "/stats")

    page = admin.get("/admin/mapping", query_string={"tenant_id": tenant["id"]})

    assert page.status_code == 200
    assert page.text.count('data-test="mapping-row"') >= 2
    assert 'data-test="preview-client"' in page.text
    assert "Initech GmbH" in page.text
    after = remotes.control("GET", "/stats")
    assert after["writes"] == before["writes"] == {"acronis": 0, "alga": 0}
    refused = admin.get("/admin/mapping?tenant_id=not-a-uuid").text
    assert "is not a tenant id" in refused
