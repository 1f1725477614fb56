"""The Acronis client against stubbed HTTP: tokens, tenants, paging and errors."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import responses
from responses import matchers

from sync.acronis import (
    AcronisClient,
    MemoryTokenCache,
    RedisTokenCache,
    credentials_digest,
    is_customer,
    is_deleted,
    is_enabled,
    parse_timestamp,
    rfc3339_utc,
    token_ttl,
)
from sync.errors import AuthError, NotFound, RemoteRejected, RemoteUnavailable
from sync.http import CallCounter
from sync.keys import Keys
from sync.settings import Settings

BASE = "http://example.test/api/2"
TOKEN_URL = f"{BASE}/idp/token"
PARTNER = "6f0c1e3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
SECRET = "very-secret-value"
TOKEN = "token-one"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ENV = {
    "ACRONIS_BASE_URL": BASE,
    "ACRONIS_CLIENT_ID": "api-client-1",
    "ACRONIS_CLIENT_SECRET": SECRET,
    "ACRONIS_TENANT_ID": PARTNER,
    "ALGA_BASE_URL": "http://alga.example.test/api/v1",
    "ALGA_API_TOKEN": "alga-key",
    "HTTP_CONNECT_TIMEOUT": "2",
    "HTTP_READ_TIMEOUT": "7",
    "HTTP_MAX_ATTEMPTS": "3",
}
KEY = f"test:acronis-token:{credentials_digest(Settings.from_env(ENV))}"


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(ENV)


def test_a_token_is_cached_per_secret_and_per_host():
    digest = credentials_digest(Settings.from_env(ENV))
    other_secret = credentials_digest(
        Settings.from_env({**ENV, "ACRONIS_CLIENT_SECRET": "another"})
    )
    other_host = credentials_digest(
        Settings.from_env({**ENV, "ACRONIS_BASE_URL": "http://elsewhere.test/api/2"})
    )

    assert len({digest, other_secret, other_host}) == 3
    assert SECRET not in KEY


@pytest.fixture
def remote() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> MemoryTokenCache:
    return MemoryTokenCache(clock=clock)


@pytest.fixture
def counter() -> CallCounter:
    return CallCounter()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(
    settings: Settings,
    counter: CallCounter,
    cache: MemoryTokenCache,
    sleeps: list[float],
    clock: FakeClock,
) -> AcronisClient:
    return AcronisClient(
        settings,
        counter=counter,
        token_cache=cache,
        keys=Keys("test"),
        sleep=sleeps.append,
        clock=clock,
    )


def grant_token(
    remote: responses.RequestsMock, token: str = TOKEN, expires_in: int = 7200
) -> None:
    body = {"access_token": token, "token_type": "bearer", "expires_in": expires_in}
    remote.post(TOKEN_URL, json=body)


def tenant(tenant_id: str, kind: str = "customer", **fields: Any) -> dict[str, Any]:
    return {"id": tenant_id, "kind": kind, "name": f"T {tenant_id}", **fields}


def test_token_is_fetched_with_basic_auth_and_cached(remote, client, counter, cache):
    grant_token(remote)

    assert client.access_token() == TOKEN
    assert client.access_token() == TOKEN

    [call] = remote.calls
    expected = base64.b64encode(f"api-client-1:{SECRET}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"
    assert call.request.body == "grant_type=client_credentials"
    assert cache.get(KEY) == TOKEN
    assert counter.by_route() == {"acronis POST /idp/token 200": 1}


def test_token_is_renewed_fifteen_minutes_before_it_expires(
    remote, client, clock, cache
):
    grant_token(remote, "first")
    assert client.access_token() == "first"

    clock.now += 7200 - 15 * 60 - 1
    assert client.access_token() == "first"

    remote.replace(responses.POST, TOKEN_URL, json={"access_token": "second"})
    clock.now += 2
    assert client.access_token() == "second"
    assert len(remote.calls) == 2


@pytest.mark.parametrize(
    ("expires_in", "ttl"), [(7200, 6300), (1800, 900), (600, 300), (1, 0)]
)
def test_token_ttl_keeps_a_margin_or_half_a_short_life(expires_in, ttl):
    assert token_ttl(expires_in) == ttl


def test_calls_carry_the_bearer_token_and_configured_timeouts(remote, client):
    grant_token(remote)
    remote.get(f"{BASE}/tenants/t-1", json=tenant("t-1"))

    assert client.get_tenant("t-1") == tenant("t-1")

    call = remote.calls[-1]
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.request.req_kwargs["timeout"] == (2.0, 7.0)


def test_a_401_drops_the_cached_token_and_renews_it_once(remote, client, counter):
    grant_token(remote, "stale")
    client.access_token()
    remote.replace(responses.POST, TOKEN_URL, json={"access_token": "fresh"})
    url = f"{BASE}/tenants/t-1"
    refused = {"error": {"code": 401, "message": "expired", "details": {}}}
    remote.get(url, json=refused, status=401)
    remote.get(url, json=tenant("t-1"))

    assert client.get_tenant("t-1") == tenant("t-1")

    sent = [c.request.headers.get("Authorization") for c in remote.calls[1:]]
    assert sent[0] == "Bearer stale"
    assert sent[2] == "Bearer fresh"
    assert counter.by_route()["acronis POST /idp/token 200"] == 2


def test_refused_credentials_say_what_to_check_and_hide_the_secret(
    remote, client, caplog
):
    caplog.set_level(logging.DEBUG)
    remote.post(
        TOKEN_URL,
        status=401,
        json={"error": "invalid_client", "error_description": "bad credentials"},
    )

    with pytest.raises(AuthError) as caught:
        client.access_token()

    message = str(caught.value)
    assert "ACRONIS_CLIENT_ID/ACRONIS_CLIENT_SECRET refused by" in message
    assert "invalid_client" in message
    assert caught.value.status == 401
    assert SECRET not in message
    assert SECRET not in caplog.text


def test_a_token_url_that_does_not_exist_points_at_the_settings(remote, client):
    remote.post(TOKEN_URL, status=404, body="<html>Not found</html>")

    with pytest.raises(NotFound, match="ACRONIS_AUTH_URL"):
        client.access_token()


def test_tokens_never_reach_the_log(remote, client, caplog):
    caplog.set_level(logging.DEBUG)
    grant_token(remote)
    remote.get(f"{BASE}/tenants/t-1", json=tenant("t-1"))

    client.get_tenant("t-1")

    assert caplog.records
    assert TOKEN not in caplog.text


def test_list_tenants_follows_the_cursor_with_only_after(remote, client):
    grant_token(remote)
    first_query = {
        "subtree_root_id": PARTNER,
        "lod": "full",
        "with_contacts": "true",
        "allow_deleted": "true",
        "updated_since": "2026-01-02T03:04:05.006Z",
    }
    remote.get(
        f"{BASE}/tenants",
        match=[matchers.query_param_matcher(first_query)],
        json={
            "timestamp": "2026-02-01T10:00:00",
            "items": [tenant(PARTNER, "partner"), tenant("c-1")],
            "paging": {"cursors": {"after": "cursor-1"}},
        },
    )
    remote.get(
        f"{BASE}/tenants",
        match=[matchers.query_param_matcher({"after": "cursor-1"})],
        json={
            "timestamp": "2026-02-01T10:00:09",
            "items": [tenant("c-2")],
            "paging": {"cursors": {}},
        },
    )

    since = datetime(2026, 1, 2, 4, 4, 5, 6000, tzinfo=timezone(timedelta(hours=1)))
    feed = client.list_tenants(updated_since=since)

    assert [t["id"] for t in feed.tenants] == [PARTNER, "c-1", "c-2"]
    assert feed.timestamp == datetime(2026, 2, 1, 10, 0, tzinfo=UTC)


def test_list_tenants_without_a_timestamp_uses_the_clock(remote, client, clock):
    grant_token(remote)
    remote.get(f"{BASE}/tenants", json={"items": []})

    feed = client.list_tenants()

    assert feed.tenants == []
    assert feed.timestamp == datetime.fromtimestamp(clock.now, UTC)
    assert "updated_since" not in remote.calls[-1].request.url


def test_a_repeated_cursor_stops_the_listing(remote, client):
    grant_token(remote)
    page = {"timestamp": "2026-02-01T10:00:00Z", "items": []}
    remote.get(f"{BASE}/tenants", json={**page, "paging": {"cursors": {"after": "x"}}})

    with pytest.raises(RemoteRejected, match="cursor"):
        client.list_tenants()


def test_get_tenant_returns_none_when_acronis_has_no_such_tenant(remote, client):
    grant_token(remote)
    missing = {"error": {"code": "TenantNotFound", "message": "no tenant"}}
    remote.get(f"{BASE}/tenants/gone", status=404, json=missing)

    assert client.get_tenant("gone") is None


def test_an_html_404_is_a_wrong_base_url_not_a_missing_tenant(remote, client):
    grant_token(remote)
    remote.get(f"{BASE}/tenants/t-1", status=404, body="<html><h1>404</h1></html>")

    with pytest.raises(NotFound, match="check ACRONIS_BASE_URL"):
        client.get_tenant("t-1")


def test_get_tenants_asks_for_at_most_a_hundred_uuids_a_call(remote, client):
    grant_token(remote)
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(150)]
    remote.get(f"{BASE}/tenants", json={"timestamp": "2026-02-01T10:00:00Z"})

    assert client.get_tenants([*ids, ids[0]]) == []

    asked = [c.request.params["uuids"].split(",") for c in remote.calls[1:]]
    assert [len(batch) for batch in asked] == [100, 50]
    assert asked[0] + asked[1] == ids
    assert client.get_tenants([]) == []
    assert len(remote.calls) == 3


def test_acronis_errors_are_read_into_the_exception(remote, client):
    grant_token(remote)
    body = {
        "error": {
            "code": "400",
            "domain": "AccountServer",
            "message": "Bad request",
            "details": {"info": "uuids is malformed"},
            "context": {},
        }
    }
    remote.get(f"{BASE}/tenants", status=400, json=body)

    with pytest.raises(RemoteRejected) as caught:
        client.list_tenants()

    assert caught.value.code == "400"
    assert "uuids is malformed" in str(caught.value)
    assert caught.value.service == "acronis"


def test_unavailable_answers_are_retried_up_to_the_limit(
    remote, client, sleeps, counter
):
    grant_token(remote)
    remote.get(f"{BASE}/tenants/t-1", status=503, body="<html>down</html>")

    with pytest.raises(RemoteUnavailable, match="not JSON"):
        client.get_tenant("t-1")

    assert counter.by_route()["acronis GET /tenants/{id} 503"] == 3
    assert len(sleeps) == 2


def test_a_429_waits_what_acronis_asked_for(remote, client, sleeps):
    grant_token(remote)
    url = f"{BASE}/tenants/t-1"
    remote.get(url, status=429, headers={"Retry-After": "4"}, json={})
    remote.get(url, json=tenant("t-1"))

    assert client.get_tenant("t-1") == tenant("t-1")
    assert sleeps == [4.0]


def test_memory_cache_forgets_entries_after_their_ttl(cache, clock):
    cache.set("k", "v", 10)
    clock.now += 9.5
    assert cache.get("k") == "v"

    clock.now += 1
    assert cache.get("k") is None

    cache.set("k", "v", 10)
    cache.delete("k")
    assert cache.get("k") is None


class RecordingRedis:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.expiries: dict[str, int] = {}

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def set(self, key: str, value: str, ex: int) -> None:
        self.values[key] = value.encode()
        self.expiries[key] = ex

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def test_redis_cache_sets_the_token_with_an_expiry():
    fake = RecordingRedis()
    cache = RedisTokenCache(fake)  # type: ignore[arg-type]

    cache.set(KEY, TOKEN, 6300)

    assert fake.expiries[KEY] == 6300
    assert cache.get(KEY) == TOKEN
    cache.delete(KEY)
    assert cache.get(KEY) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-06-22T18:25:16", datetime(2016, 6, 22, 18, 25, 16, tzinfo=UTC)),
        ("2016-06-22T18:25:16Z", datetime(2016, 6, 22, 18, 25, 16, tzinfo=UTC)),
        ("2016-06-22T20:25:16+02:00", datetime(2016, 6, 22, 18, 25, 16, tzinfo=UTC)),
        ("2016-06-22T18:25:16.5", datetime(2016, 6, 22, 18, 25, 16, 500000, UTC)),
    ],
)
def test_parse_timestamp_reads_any_zone_as_utc(text, expected):
    parsed = parse_timestamp(text)

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_parse_timestamp_rejects_text_that_is_not_a_time():
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def test_rfc3339_utc_treats_a_naive_time_as_utc():
    assert rfc3339_utc(datetime(2026, 3, 4, 5, 6, 7)) == "2026-03-04T05:06:07.000Z"


def test_tenant_helpers_read_kind_deletion_and_state():
    live = tenant("a", enabled=True, deleted_at=None)
    gone = tenant("b", "folder", enabled=False, deleted_at="2026-01-01T00:00:00")

    assert is_customer(live)
    assert not is_customer(gone)
    assert not is_deleted(live)
    assert is_deleted(gone)
    assert is_enabled(live)
    assert not is_enabled(gone)
