"""The Acronis Cyber Protect Cloud client: access tokens and tenants.

Every call carries a bearer token obtained with the API client's credentials.
The token is cached (in Redis when several workers share one API client) and
renewed when it nears its end or when Acronis answers 401. Tenants are read
under the configured partner, whole subtrees at a time, and ``updated_since``
turns the same call into a change feed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import requests
from pydantic import SecretStr
from redis import Redis

from sync.errors import AuthError, NotFound, RemoteRejected
from sync.http import CallCounter, RemoteProblem, RemoteSession, body_text
from sync.keys import Keys
from sync.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "acronis"
TOKEN_ROUTE = "/idp/token"
# Acronis' own samples renew a token once less than this is left.
RENEW_MARGIN_SECONDS = 15 * 60
# Assumed when a token answer omits expires_in; shorter than the usual two hours.
DEFAULT_TOKEN_LIFETIME = 3600
UUIDS_PER_CALL = 100
# Code given to a 404 whose body is not JSON: the route itself is missing.
NO_SUCH_ROUTE = "NO_SUCH_ROUTE"
TENANT_DETAILS = {"lod": "full", "with_contacts": "true", "allow_deleted": "true"}


class TokenCache(Protocol):
    """Where access tokens are kept between calls, and between workers."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl_seconds: int) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryTokenCache:
    """A token cache for one process; entries expire after their TTL."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[str, float]] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, expires_at = entry
            if self._clock() >= expires_at:
                del self._entries[key]
                return None
            return value

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        with self._lock:
            self._entries[key] = (value, self._clock() + ttl_seconds)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


class RedisTokenCache:
    """A token cache shared by every worker that uses one Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def get(self, key: str) -> str | None:
        value = self._redis.get(key)
        if isinstance(value, bytes):
            return value.decode()
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        self._redis.set(key, value, ex=ttl_seconds)

    def delete(self, key: str) -> None:
        self._redis.delete(key)


def token_ttl(expires_in: int) -> int:
    """How long to keep a token that lives ``expires_in`` seconds (0: do not keep).

    A token is dropped from the cache when ``RENEW_MARGIN_SECONDS`` are left;
    one that lives shorter than twice that margin is kept for half its life.
    """
    return max(expires_in - RENEW_MARGIN_SECONDS, expires_in // 2, 0)


class AcronisCredentials:
    """Bearer tokens for one API client, fetched on demand and cached."""

    def __init__(
        self,
        token_session: RemoteSession,
        *,
        client_id: str,
        client_secret: SecretStr,
        cache: TokenCache,
        cache_key: str,
    ) -> None:
        self._session = token_session
        self._client_id = client_id
        self._client_secret = client_secret
        self._cache = cache
        self._cache_key = cache_key
        # One fetch at a time per process; other threads then read the cache.
        self._lock = threading.Lock()

    def headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def invalidate(self) -> None:
        self._cache.delete(self._cache_key)

    def token(self) -> str:
        """A valid access token, from the cache when it has one."""
        cached = self._cache.get(self._cache_key)
        if cached:
            return cached
        with self._lock:
            cached = self._cache.get(self._cache_key)
            if cached:
                return cached
            return self._fetch()

    def _fetch(self) -> str:
        secret = self._client_secret.get_secret_value()
        try:
            response = self._session.request(
                "POST",
                "",
                route=TOKEN_ROUTE,
                data={"grant_type": "client_credentials"},
                auth=(self._client_id, secret),
            )
        except RemoteRejected as exc:
            raise self._refused(exc) from exc

        token, expires_in = self._read_token(response)
        ttl = token_ttl(expires_in)
        if ttl > 0:
            self._cache.set(self._cache_key, token, ttl)
        log.debug("acronis token renewed, cached for %d s", ttl)
        return token

    def _read_token(self, response: requests.Response) -> tuple[str, int]:
        body = self._session.json_of(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(
                f"{self._session.base_url} answered without an access token; "
                "check ACRONIS_AUTH_URL or ACRONIS_BASE_URL",
                service=SERVICE,
                status=response.status_code,
            )
        expires_in = body.get("expires_in")
        if not isinstance(expires_in, int) or isinstance(expires_in, bool):
            expires_in = DEFAULT_TOKEN_LIFETIME
        return token, expires_in

    def _refused(self, exc: RemoteRejected) -> RemoteRejected:
        if exc.status == 404:
            return NotFound(
                f"no token endpoint at {self._session.base_url}; check "
                "ACRONIS_BASE_URL, or ACRONIS_AUTH_URL when it is set",
                service=SERVICE,
                status=exc.status,
            )
        reason = exc.code or exc.message
        return AuthError(
            "ACRONIS_CLIENT_ID/ACRONIS_CLIENT_SECRET refused by "
            f"{self._session.base_url}: {reason}",
            service=SERVICE,
            status=exc.status,
            code=exc.code,
            details=exc.details,
        )


def read_acronis_error(response: requests.Response) -> RemoteProblem:
    """Read an Acronis error body: API shape, OAuth shape, or not JSON at all."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None

    if isinstance(error, dict):
        code = error.get("code")
        message = str(error.get("message") or "no message")
        info = error.get("details")
        if isinstance(info, dict) and info.get("info"):
            message = f"{message} ({info['info']})"
        return RemoteProblem(message, None if code is None else str(code), info)
    if isinstance(error, str):
        description = body.get("error_description") if body else None
        message = f"{error}: {description}" if description else error
        return RemoteProblem(message, error)
    return _unreadable(response)


def _unreadable(response: requests.Response) -> RemoteProblem:
    if response.status_code == 404:
        return RemoteProblem(
            f"no such route {response.request.path_url}; check ACRONIS_BASE_URL "
            "(your data center's URL ending in /api/2)",
            NO_SUCH_ROUTE,
        )
    excerpt = body_text(response) or "an empty body"
    return RemoteProblem(f"answered with a body that is not JSON: {excerpt}")


@dataclass(frozen=True)
class TenantFeed:
    """Tenants read in one listing, and the moment the listing describes."""

    tenants: list[dict[str, Any]]
    timestamp: datetime


def credentials_digest(settings: Settings) -> str:
    """A digest naming one API client at one data center, secret included."""
    parts = (
        settings.token_url,
        settings.acronis_base,
        settings.acronis_client_id,
        settings.acronis_client_secret.get_secret_value(),
    )
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def parse_timestamp(value: str) -> datetime:
    """An aware UTC datetime from ISO 8601 text; a value without a zone is UTC.

    Raises ``ValueError`` when the text is not a timestamp.
    """
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def rfc3339_utc(moment: datetime) -> str:
    """``moment`` as RFC 3339 in UTC with milliseconds; a naive one is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def is_customer(tenant: Mapping[str, Any]) -> bool:
    return tenant.get("kind") == "customer"


def is_deleted(tenant: Mapping[str, Any]) -> bool:
    return bool(tenant.get("deleted_at"))


def is_enabled(tenant: Mapping[str, Any]) -> bool:
    return bool(tenant.get("enabled", True))


class AcronisClient:
    """Reads tenants of one partner from the Account Management API v2."""

    def __init__(
        self,
        settings: Settings,
        *,
        counter: CallCounter,
        token_cache: TokenCache,
        keys: Keys,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        http = session or requests.Session()
        common: dict[str, Any] = {
            "read_error": read_acronis_error,
            "counter": counter,
            "timeout": (settings.connect_timeout, settings.read_timeout),
            "max_attempts": settings.max_attempts,
            "session": http,
            "sleep": sleep,
        }
        # One attempt per token request: it is made inside an API call's
        # attempt, whose retries already cover it; nesting them would multiply.
        token_session = RemoteSession(
            SERVICE, settings.token_url, **{**common, "max_attempts": 1}
        )
        self._credentials = AcronisCredentials(
            token_session,
            client_id=settings.acronis_client_id,
            client_secret=settings.acronis_client_secret,
            cache=token_cache,
            cache_key=keys.acronis_token(credentials_digest(settings)),
        )
        self._api = RemoteSession(
            SERVICE, settings.acronis_base, credentials=self._credentials, **common
        )
        self._partner_id = settings.acronis_tenant_id
        self._clock = clock

    def access_token(self) -> str:
        """A valid access token; fetching one proves the credentials work.

        A token request is tried once: a failure is reported, not retried.
        """
        return self._credentials.token()

    def list_tenants(self, *, updated_since: datetime | None = None) -> TenantFeed:
        """Every tenant under the partner (itself included), or those changed since.

        Deleted tenants are included, with ``deleted_at`` set. The feed's
        timestamp is the one to pass as ``updated_since`` next time.
        """
        params = {"subtree_root_id": self._partner_id, **TENANT_DETAILS}
        if updated_since is not None:
            params["updated_since"] = rfc3339_utc(updated_since)
        started = datetime.fromtimestamp(self._clock(), UTC)

        pages = list(self._pages(params))
        tenants = [tenant for page in pages for tenant in page.get("items", [])]
        # The first page's stamp is the earliest: changes made while paging
        # are then seen again next time rather than missed.
        stamp = pages[0].get("timestamp")
        timestamp = parse_timestamp(stamp) if isinstance(stamp, str) else started
        return TenantFeed(tenants, timestamp)

    def get_tenant(self, tenant_id: str) -> dict[str, Any] | None:
        """One tenant, or None when Acronis has no such tenant."""
        try:
            tenant = self._api.get_json(
                f"/tenants/{quote(tenant_id, safe='')}",
                route="/tenants/{id}",
                params={"allow_deleted": "true"},
            )
        except NotFound as exc:
            if exc.code == NO_SUCH_ROUTE:
                raise
            return None
        return tenant if isinstance(tenant, dict) else None

    def get_tenants(self, tenant_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The tenants among ``tenant_ids`` that exist, deleted ones included."""
        unique = list(dict.fromkeys(tenant_ids))
        tenants: list[dict[str, Any]] = []
        for start in range(0, len(unique), UUIDS_PER_CALL):
            batch = unique[start : start + UUIDS_PER_CALL]
            params = {"uuids": ",".join(batch), **TENANT_DETAILS}
            for page in self._pages(params):
                tenants.extend(page.get("items", []))
        return tenants

    def _pages(self, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Each page of a tenant listing, following ``paging.cursors.after``."""
        query: Mapping[str, str] = params
        seen: set[str] = set()
        while True:
            page = self._api.get_json("/tenants", route="/tenants", params=query)
            if not isinstance(page, dict):
                raise RemoteRejected(
                    "answered /tenants with something other than an object",
                    service=SERVICE,
                )
            yield page

            cursors = (page.get("paging") or {}).get("cursors") or {}
            cursor = cursors.get("after")
            if not cursor:
                return
            if cursor in seen:
                raise RemoteRejected(
                    "repeated a paging cursor; stopped to avoid a loop",
                    service=SERVICE,
                )
            seen.add(cursor)
            # The cursor carries every other argument of the listing.
            query = {"after": cursor}
