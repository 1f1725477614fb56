"""The AlgaPSA client against stubbed HTTP and answers recorded from a real server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses

from sync.alga import AlgaClient, same_name
from sync.errors import AuthError, Conflict, NotFound, RemoteRejected, RemoteUnavailable
from sync.http import CallCounter
from sync.settings import Settings

BASE = "http://alga.example.test/api/v1"
API_KEY = "alga-api-key"
RECORDED = (
    Path(__file__).parents[2].parent / "shared" / "reference" / "fixtures" / "alga"
)
CLIENT_ID = "65fede29-9cca-4680-b682-0d89ed91adcb"

Recorded = Callable[[str], dict[str, Any]]


def make_settings(**extra: str) -> Settings:
    return Settings.from_env(
        {
            "ACRONIS_BASE_URL": "http://example.test/api/2",
            "ACRONIS_CLIENT_ID": "api-client-1",
            "ACRONIS_CLIENT_SECRET": "acronis-secret",
            "ACRONIS_TENANT_ID": "6f0c1e3a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
            "ALGA_BASE_URL": BASE,
            "ALGA_API_TOKEN": API_KEY,
            "HTTP_MAX_ATTEMPTS": "3",
            **extra,
        }
    )


@pytest.fixture
def remote() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def counter() -> CallCounter:
    return CallCounter()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(counter: CallCounter, sleeps: list[float]) -> AlgaClient:
    return AlgaClient(make_settings(), counter=counter, sleep=sleeps.append)


@pytest.fixture
def recorded() -> Recorded:
    """Load one recorded request and answer pair by file name."""
    if not RECORDED.is_dir():
        pytest.skip(f"the recorded AlgaPSA answers are not at {RECORDED}")

    def load(name: str) -> dict[str, Any]:
        pair: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
        return pair

    return load


def replay(remote: responses.RequestsMock, pair: dict[str, Any]) -> None:
    """Serve a recorded answer at the recorded method and path, query aside."""
    path = pair["request"]["path"].removeprefix("/api/v1").split("?")[0]
    answer = pair["response"]
    remote.add(
        pair["request"]["method"],
        BASE + path,
        json=answer["body"],
        status=answer["status"],
        headers={k: v for k, v in answer["headers"].items() if k != "content-type"},
    )


def page(items: list[dict[str, Any]], **pagination: Any) -> dict[str, Any]:
    return {"data": items, "pagination": pagination}


def named(name: str, client_id: str = "c-1") -> dict[str, Any]:
    return {"client_id": client_id, "client_name": name}


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


def test_list_clients_reads_every_page(remote, client, recorded):
    first = recorded("list-page")["response"]["body"]
    remote.get(f"{BASE}/clients", json=first)
    remote.get(f"{BASE}/clients", json=page([named("Last")], hasNext=False))

    clients = client.list_clients()

    assert [c["client_name"] for c in clients] == ["PROD EXTRA", "Prod Extra", "Last"]
    asked = [call.request.params for call in remote.calls]
    assert asked == [{"page": "1", "limit": "100"}, {"page": "2", "limit": "100"}]


def test_list_clients_falls_back_on_total_pages(remote, client):
    remote.get(f"{BASE}/clients", json=page([named("A")], page=1, totalPages=2))
    remote.get(f"{BASE}/clients", json=page([named("B")], page=2, totalPages=2))

    assert [c["client_name"] for c in client.list_clients()] == ["A", "B"]
    assert len(remote.calls) == 2


def test_list_clients_sends_updated_from_in_utc_with_milliseconds(remote, client):
    remote.get(f"{BASE}/clients", json=page([], hasNext=False))

    client.list_clients(updated_from=datetime(2026, 12, 3, 17, 3, 19, tzinfo=UTC))

    assert remote.calls[0].request.params["updated_from"] == "2026-12-03T17:03:19.000Z"


def test_every_call_carries_the_key_and_the_tenant_header(remote, counter):
    remote.get(f"{BASE}/clients", json=page([], hasNext=False))
    client = AlgaClient(make_settings(ALGA_TENANT_ID="tenant-9"), counter=counter)

    client.list_clients()

    headers = remote.calls[0].request.headers
    assert headers["x-api-key"] == API_KEY
    assert headers["x-tenant-id"] == "tenant-9"


def test_get_client_returns_the_recorded_client(remote, client, recorded):
    replay(remote, recorded("get-one"))

    found = client.get_client(CLIENT_ID)

    assert found is not None
    assert found["client_name"] == "Fixture Minimal 6eac8e"


def test_get_client_returns_none_for_an_unknown_id(remote, client, recorded):
    pair = recorded("get-unknown-404")
    replay(remote, pair)

    unknown = pair["request"]["path"].rsplit("/", 1)[1]
    assert client.get_client(unknown) is None


def test_an_html_404_names_the_settings_to_check(remote, client):
    remote.get(f"{BASE}/clients/{CLIENT_ID}", status=404, body="<html>Not Found</html>")

    with pytest.raises(
        NotFound, match="check ALGA_BASE_URL and ALGA_COMPANIES_ENDPOINT"
    ):
        client.get_client(CLIENT_ID)


def test_find_by_exact_name_compares_case_and_trims(remote, client, recorded):
    body = recorded("list-filter-client-name")["response"]["body"]
    remote.get(f"{BASE}/clients", json=body)

    assert client.find_by_exact_name("fixture minimal 6eac8e") is None
    found = client.find_by_exact_name("  Fixture Minimal 6eac8e ")

    assert found is not None
    assert found["client_id"] == CLIENT_ID
    assert remote.calls[-1].request.params["client_name"] == "Fixture Minimal 6eac8e"


def test_find_by_exact_name_pages_past_substring_matches(remote, client):
    remote.get(f"{BASE}/clients", json=page([named("Acme Ltd", "a")], hasNext=True))
    remote.get(f"{BASE}/clients", json=page([named("Acme", "b")], hasNext=False))

    found = client.find_by_exact_name("Acme")

    assert found == named("Acme", "b")
    assert remote.calls[1].request.params["page"] == "2"


def test_create_client_posts_the_body_and_returns_the_client(
    remote, client, recorded, counter
):
    pair = recorded("create-minimal")
    replay(remote, pair)

    created = client.create_client(pair["request"]["body"])

    assert created["client_id"] == CLIENT_ID
    assert sent_json(remote.calls[0]) == pair["request"]["body"]
    assert counter.by_route() == {"alga POST /clients 201": 1}


def test_a_taken_name_raises_conflict_at_once(remote, client, recorded):
    pair = recorded("create-duplicate-409")
    replay(remote, pair)

    with pytest.raises(Conflict, match="already exists") as caught:
        client.create_client(pair["request"]["body"])

    assert caught.value.code == "CONFLICT"
    assert len(remote.calls) == 1


def test_validation_errors_name_each_field(remote, client, recorded):
    pair = recorded("create-name-too-long-400")
    replay(remote, pair)

    with pytest.raises(RemoteRejected) as caught:
        client.create_client(pair["request"]["body"])

    assert (
        caught.value.message
        == "client_name: Client name must be 255 characters or less"
    )
    assert caught.value.code == "VALIDATION_ERROR"


def test_update_client_puts_only_the_given_fields(remote, client, recorded):
    pair = recorded("update-partial")
    replay(remote, pair)

    updated = client.update_client(CLIENT_ID, {"notes": "changed", "is_inactive": True})

    assert updated["notes"] == "changed"
    assert updated["is_inactive"] is True
    assert sent_json(remote.calls[0]) == pair["request"]["body"]


def test_internal_configuration_is_permanent_not_retried(remote, client, recorded):
    replay(remote, recorded("update-email-500"))

    with pytest.raises(RemoteRejected) as caught:
        client.update_client(CLIENT_ID, {"email": "a@example.com"})

    assert not isinstance(caught.value, RemoteUnavailable)
    assert caught.value.status == 500
    assert len(remote.calls) == 1


def test_other_server_errors_are_retried(remote, client, sleeps):
    url = f"{BASE}/clients/{CLIENT_ID}"
    remote.get(url, status=500, json={"error": {"code": "INTERNAL_ERROR"}})
    remote.get(url, json={"data": named("Back", CLIENT_ID)})

    assert client.get_client(CLIENT_ID) == named("Back", CLIENT_ID)
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("name", "code"), [("no-key-401", None), ("wrong-key-401", "UNAUTHORIZED")]
)
def test_a_refused_key_says_to_check_the_token(remote, client, recorded, name, code):
    replay(remote, recorded(name))

    with pytest.raises(AuthError, match="check ALGA_API_TOKEN") as caught:
        client.list_clients()

    assert caught.value.code == code
    assert API_KEY not in str(caught.value)
    assert len(remote.calls) == 1


def test_locations_are_listed_and_created(remote, client, recorded):
    replay(remote, recorded("locations-list"))
    pair = recorded("location-create")
    replay(remote, pair)

    assert client.list_locations(CLIENT_ID) == []
    created = client.create_location(CLIENT_ID, pair["request"]["body"])

    assert created["phone"] == "+15551234567"
    assert sent_json(remote.calls[1]) == pair["request"]["body"]


def test_count_clients_reads_the_total(remote, client, recorded):
    remote.get(f"{BASE}/clients", json=recorded("list-page")["response"]["body"])

    assert client.count_clients() == 33
    assert remote.calls[0].request.params["limit"] == "1"


def test_the_client_slows_down_when_the_budget_runs_low(remote, client, sleeps):
    url = f"{BASE}/clients/{CLIENT_ID}"
    body = {"data": named("A", CLIENT_ID)}
    remote.get(url, json=body, headers={"X-RateLimit-Remaining": "50"})

    client.get_client(CLIENT_ID)
    client.get_client(CLIENT_ID)
    assert sleeps == []

    remote.replace(
        responses.GET, url, json=body, headers={"X-RateLimit-Remaining": "2"}
    )
    for _ in range(3):
        client.get_client(CLIENT_ID)
    # The answer that reports the low budget spaces the calls after it.
    assert len(sleeps) == 1
    assert 0.5 < sleeps[0] <= 1.0


def test_a_429_waits_what_the_server_asked_for(remote, client, sleeps):
    url = f"{BASE}/clients/{CLIENT_ID}"
    limited = {"error": {"code": "RATE_LIMITED", "message": "slow down"}}
    remote.get(url, status=429, json=limited, headers={"Retry-After": "3"})
    remote.get(url, json={"data": named("A", CLIENT_ID)})

    assert client.get_client(CLIENT_ID) == named("A", CLIENT_ID)
    assert sleeps == [3.0]


@pytest.fixture
def old_client(counter: CallCounter, sleeps: list[float]) -> AlgaClient:
    """A client set up for AlgaPSA before v0.12, when clients were companies."""
    settings = make_settings(
        ALGA_COMPANIES_ENDPOINT="/companies",
        ALGA_COMPANY_SEARCH_ENDPOINT="/companies",
        ALGA_NAME_FIELD="company_name",
        ALGA_ID_FIELD="company_id",
    )
    return AlgaClient(settings, counter=counter, sleep=sleeps.append)


def test_old_servers_get_their_names_on_the_wire(remote, old_client, counter):
    company = {"company_id": "k-1", "company_name": "Acme", "notes": ""}
    remote.post(f"{BASE}/companies", json={"data": company}, status=201)
    remote.put(f"{BASE}/companies/k-1", json={"data": company})

    created = old_client.create_client({"client_name": "Acme", "notes": ""})
    old_client.update_client(created["client_id"], {"client_name": "Acme"})

    assert created == {"client_id": "k-1", "client_name": "Acme", "notes": ""}
    assert sent_json(remote.calls[0]) == {"company_name": "Acme", "notes": ""}
    assert sent_json(remote.calls[1]) == {"company_name": "Acme"}
    assert counter.by_route() == {
        "alga POST /companies 201": 1,
        "alga PUT /companies/{id} 200": 1,
    }


def test_old_servers_are_searched_and_read_by_their_names(remote, old_client, counter):
    company = {"company_id": "k-1", "company_name": "Acme"}
    remote.get(f"{BASE}/companies", json=page([company], hasNext=False))
    remote.get(
        f"{BASE}/companies/k-1/locations", json={"data": [{"company_id": "k-1"}]}
    )

    assert old_client.find_by_exact_name("Acme") == named("Acme", "k-1")
    assert old_client.list_locations("k-1") == [{"client_id": "k-1"}]
    assert remote.calls[0].request.params["company_name"] == "Acme"
    assert "alga GET /companies/{id}/locations 200" in counter.by_route()


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Acme", "Acme", True),
        (" Acme  ", "Acme", True),
        ("Acme", "ACME", False),
        ("Acme Ltd", "Acme", False),
        ("Zürich AG 🚀", "Zürich AG 🚀 ", True),
    ],
)
def test_same_name_follows_the_server(a, b, same):
    assert same_name(a, b) is same
