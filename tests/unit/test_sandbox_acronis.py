"""The sandbox's Acronis side, against acronis-api.md and the OpenAPI excerpt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sandbox import create_app
from sandbox.state import Options, SandboxState

SHARED = Path(__file__).parents[2].parent / "shared"
OPENAPI = SHARED / "reference" / "openapi" / "acronis-account-management-v2.subset.json"
BASE = "/acronis/api/2"
CREDENTIALS = ("sandbox-client", "sandbox-secret")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def with_nulls(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable`` turned into JSON Schema's null type."""
    if isinstance(node, list):
        return [with_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: with_nulls(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture(scope="module")
def schema():
    if not OPENAPI.exists():
        pytest.skip(f"{OPENAPI} is absent: check out the shared folder beside the repo")
    document = with_nulls(json.loads(OPENAPI.read_text()))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:acronis", resource)

    def validator(name):
        ref = {"$ref": f"urn:acronis#/components/schemas/{name}"}
        return Draft202012Validator(ref, registry=registry)

    return validator


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def state(clock):
    return SandboxState(Options(tenants=60, seed=9, token_ttl=600), clock=clock)


@pytest.fixture
def client(state):
    return create_app(state).test_client()


@pytest.fixture
def auth(client):
    form = {"grant_type": "client_credentials"}
    answer = client.post(f"{BASE}/idp/token", data=form, auth=CREDENTIALS)
    return {"Authorization": f"Bearer {answer.json['access_token']}"}


def list_all(
    client: FlaskClient, auth: dict[str, str], query: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every item of a listing, following cursors; also the pages seen."""
    answer: Any = client.get(f"{BASE}/tenants?{query}", headers=auth)
    pages: list[Any] = [answer.json]
    while "after" in pages[-1]["paging"]["cursors"]:
        cursor = pages[-1]["paging"]["cursors"]["after"]
        pages.append(client.get(f"{BASE}/tenants?after={cursor}", headers=auth).json)
    return [item for page in pages for item in page["items"]], pages


def test_token_answer_matches_schema(client, schema):
    form = {"grant_type": "client_credentials"}
    answer = client.post(f"{BASE}/idp/token", data=form, auth=CREDENTIALS)

    assert answer.status_code == 200
    schema("token").validate(answer.json)
    assert answer.json["token_type"] == "bearer"
    assert answer.json["expires_in"] == 600


def test_wrong_credentials_and_bad_grant(client, schema):
    form = {"grant_type": "client_credentials"}
    wrong = client.post(f"{BASE}/idp/token", data=form, auth=("sandbox-client", "x"))
    bad = client.post(
        f"{BASE}/idp/token", data={"grant_type": "password"}, auth=CREDENTIALS
    )

    assert wrong.status_code == 401
    assert wrong.json["error"] == "invalid_client"
    assert set(wrong.json) == {"error", "error_description"}
    assert bad.status_code == 400
    schema("tokenError").validate(bad.json)
    assert bad.json["error"] == "invalid_request"


def test_token_expires_after_its_ttl(client, auth, state, clock, schema):
    path = f"{BASE}/tenants/{state.root_id}"
    assert client.get(path, headers=auth).status_code == 200

    clock.now += 601
    expired = client.get(path, headers=auth)
    missing = client.get(path)

    assert expired.status_code == missing.status_code == 401
    schema("errorScheme").validate(expired.json)
    assert expired.json["error"]["context"] == {}


def test_subtree_listing_has_every_depth_and_matches_schema(
    client, auth, state, schema
):
    query = f"subtree_root_id={state.root_id}&lod=full&with_contacts=true"
    items, pages = list_all(client, auth, query)
    validator = schema("tenantBatch")

    for page in pages:
        validator.validate(page)
    live = [t for t in state.tenants.values() if t["_deleted_us"] is None]
    assert {i["id"] for i in items} == {t["id"] for t in live}
    assert items[0]["id"] == state.root_id == items[0]["parent_id"]
    assert len({state.levels[i["id"]] for i in items if i["kind"] == "customer"}) >= 3
    assert any(item["contacts"] for item in items)


def test_contacts_only_with_contacts(client, auth, state):
    items, _ = list_all(client, auth, f"subtree_root_id={state.root_id}")

    assert all(item["contacts"] == [] for item in items)
    assert all("contact" in item for item in items)


def test_cursor_pages_cover_everything_once(client, auth, state):
    whole, _ = list_all(client, auth, f"subtree_root_id={state.root_id}")
    paged, pages = list_all(client, auth, f"subtree_root_id={state.root_id}&limit=7")

    assert [i["id"] for i in paged] == [i["id"] for i in whole]
    assert len(pages) == -(-len(whole) // 7)
    assert all(len(page["items"]) == 7 for page in pages[:-1])
    assert "after" not in pages[-1]["paging"]["cursors"]


def test_deleted_hidden_unless_allowed(client, auth, state):
    root = state.root_id
    hidden, _ = list_all(client, auth, f"subtree_root_id={root}")
    shown, _ = list_all(client, auth, f"subtree_root_id={root}&allow_deleted=true")
    deleted = [t for t in shown if t["deleted_at"] is not None]

    assert deleted
    assert len(shown) == len(hidden) + len(deleted)
    absent = client.get(f"{BASE}/tenants/{deleted[0]['id']}", headers=auth)
    assert absent.status_code == 404


def test_updated_since_returns_only_later_changes(client, auth, state, clock):
    first = client.get(f"{BASE}/tenants?subtree_root_id={state.root_id}", headers=auth)
    since = first.json["timestamp"]
    customer = next(i for i in first.json["items"] if i["kind"] == "customer")
    clock.now += 5
    client.patch(
        f"/_sandbox/acronis/tenants/{customer['id']}", json={"name": "Moved On"}
    )

    query = f"subtree_root_id={state.root_id}&updated_since={since}&allow_deleted=true"
    changed, _ = list_all(client, auth, query)
    naive = since.removesuffix("Z")
    again, _ = list_all(client, auth, query.replace(since, naive))

    assert [item["name"] for item in changed] == ["Moved On"]
    assert again == changed


def test_selectors_are_exclusive_and_uuids_capped(client, auth, state):
    root = state.root_id
    both = client.get(
        f"{BASE}/tenants?subtree_root_id={root}&parent_id={root}", headers=auth
    )
    many = ",".join([root] * 101)
    capped = client.get(f"{BASE}/tenants?uuids={many}", headers=auth)
    kids = client.get(f"{BASE}/tenants?parent_id={root}", headers=auth).json["items"]
    ids = ",".join(kid["id"] for kid in kids[:3])
    chosen = client.get(f"{BASE}/tenants?uuids={ids}", headers=auth).json["items"]

    assert both.status_code == capped.status_code == 400
    assert all(kid["parent_id"] == root for kid in kids)
    assert {c["id"] for c in chosen} == {k["id"] for k in kids[:3]}


def test_children_are_uuids(client, auth, state):
    answer = client.get(f"{BASE}/tenants/{state.root_id}/children", headers=auth)

    assert set(answer.json["items"]) == {
        i
        for i in state.children[state.root_id]
        if state.tenants[i]["_deleted_us"] is None
    }


def test_put_needs_the_current_version(client, auth, state, schema):
    tenant_id = state.children[state.root_id][0]
    current = client.get(f"{BASE}/tenants/{tenant_id}", headers=auth).json
    body = {"version": current["version"], "customer_id": "alga-123"}

    updated = client.put(f"{BASE}/tenants/{tenant_id}", json=body, headers=auth)
    stale = client.put(f"{BASE}/tenants/{tenant_id}", json=body, headers=auth)

    assert updated.status_code == 200
    schema("tenant").validate(updated.json)
    assert updated.json["customer_id"] == "alga-123"
    assert updated.json["version"] == current["version"] + 1
    assert updated.json["updated_at"] > current["updated_at"]
    assert stale.status_code == 409
    schema("errorScheme").validate(stale.json)


def test_unknown_tenant_is_an_acronis_404(client, auth, schema):
    missing = client.get(
        f"{BASE}/tenants/00000000-0000-4000-8000-000000000000", headers=auth
    )

    assert missing.status_code == 404
    schema("errorScheme").validate(missing.json)
