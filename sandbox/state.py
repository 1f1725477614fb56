"""Everything the sandbox remembers, behind one lock.

A :class:`SandboxState` holds both fake remotes: the Acronis tenant tree with
its access tokens, and the AlgaPSA clients with their locations, tags and
contacts. Request handlers take ``state.lock`` for every read or write, so
the threaded server never sees a half-made change.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app

from sandbox import data

ACRONIS_CLIENT_ID = "sandbox-client"
ACRONIS_CLIENT_SECRET = "sandbox-secret"
ALGA_API_KEY = "sandbox-alga-key"
# AlgaPSA's defaults: a burst of 120 calls, refilled at 60 a minute.
RATE_PER_MINUTE = 60.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

Tenant = dict[str, Any]
Client = dict[str, Any]


@dataclass(frozen=True)
class Options:
    """How a sandbox is generated and how it misbehaves."""

    tenants: int = 40
    seed: int = 1
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    enforce_rate_limit: bool = False
    rate_per_minute: float = RATE_PER_MINUTE
    token_ttl: int = 7200
    duplicate_names: int = 0
    alga_clients: int = 0


@dataclass
class Fault:
    """An answer forced on matching requests, ``times`` times (None: always)."""

    service: str
    status: int
    path: re.Pattern[str]
    method: str | None = None
    body_contains: str | None = None
    times: int | None = None
    retry_after: str | None = None

    def matches(self, service: str, method: str, path: str, body: str) -> bool:
        if service != self.service or self.times == 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.body_contains is not None and self.body_contains not in body:
            return False
        return self.path.search(path) is not None


class TokenBucket:
    """AlgaPSA's limiter: a burst of twice the calls refilled in a minute."""

    def __init__(
        self, clock: Callable[[], float], per_minute: float = RATE_PER_MINUTE
    ) -> None:
        self._clock = clock
        self.refill_per_second = per_minute / 60
        self.burst = int(per_minute * 2)
        self.tokens = float(self.burst)
        self._last = clock()

    def take(self) -> bool:
        """Spend one call; False when none is left."""
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self.tokens = min(
            float(self.burst), self.tokens + elapsed * self.refill_per_second
        )
        self._last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    @property
    def remaining(self) -> int:
        return max(0, int(self.tokens))

    def seconds_until_next(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.refill_per_second)


class Stats:
    """Calls per service and route template, and writes per service."""

    WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.routes: dict[str, dict[str, int]] = {"acronis": {}, "alga": {}}
        self.writes = {"acronis": 0, "alga": 0}

    def add(self, service: str, method: str, template: str) -> None:
        key = f"{method} {template}"
        routes = self.routes.setdefault(service, {})
        routes[key] = routes.get(key, 0) + 1
        if method in self.WRITE_METHODS and key != "POST /idp/token":
            self.writes[service] = self.writes.get(service, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        total = sum(sum(routes.values()) for routes in self.routes.values())
        return {
            "services": {name: dict(routes) for name, routes in self.routes.items()},
            "total": total,
            "writes": dict(self.writes),
        }


class SandboxState:
    """Both remotes' data, the knobs, the counters and the lock that guards them."""

    def __init__(
        self, options: Options, clock: Callable[[], float] = time.time
    ) -> None:
        self.lock = threading.RLock()
        self.options = options
        self.clock = clock
        self._last_us = 0
        self._fail_rng = random.Random(f"fail-{options.seed}")
        self._id_rng = random.Random(f"ids-{options.seed}")
        self.stats = Stats()
        self.faults: list[Fault] = []
        self.bucket = TokenBucket(clock, options.rate_per_minute)
        self.tokens: dict[str, float] = {}
        self.alga_tenant = data.alga_tenant_id(options.seed)
        self.clients: dict[str, Client] = {}
        self.client_order: dict[tuple[str, str], list[Client]] = {}
        self.client_names: dict[str, str] = {}
        self.locations: dict[str, list[dict[str, Any]]] = {}
        self.tags: dict[str, list[str]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.tenants: dict[str, Tenant] = {}
        self.children: dict[str, list[str]] = {}
        self.levels: dict[str, int] = {}
        self._subtree_cache: dict[str, list[str]] = {}
        self.root_id = data.partner_root_id(options.seed)
        for tenant in data.generate_tenants(
            options.tenants, options.seed, options.duplicate_names
        ):
            self.add_tenant(tenant)
        self._preload_clients()

    def _preload_clients(self) -> None:
        # Imported here because the client rules build on this module.
        from sandbox.alga_store import create_client

        for body in data.generate_alga_clients(
            self.options.alga_clients, self.options.seed
        ):
            create_client(self, body)

    # Time -------------------------------------------------------------

    def tick(self) -> int:
        """Now in microseconds, strictly later than any earlier tick.

        Both change stamps and response timestamps come from here, so a
        change made after a listing always sorts after that listing's time.
        """
        with self.lock:
            now = int(self.clock() * 1_000_000)
            self._last_us = max(now, self._last_us + 1)
            return self._last_us

    def new_uuid(self) -> str:
        with self.lock:
            return str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4))

    def roll_failure(self) -> bool:
        """Whether this call should fail at random, by --fail-rate."""
        with self.lock:
            rate = self.options.fail_rate
            return rate > 0 and self._fail_rng.random() < rate

    def configure(self, **changes: Any) -> Options:
        """Change the live knobs (latency, failure rate, rate limiting)."""
        with self.lock:
            self.options = replace(self.options, **changes)
            return self.options

    # Acronis tenants --------------------------------------------------

    def add_tenant(self, tenant: Tenant) -> None:
        """Insert a tenant below its parent (the root is its own parent)."""
        with self.lock:
            tenant_id = tenant["id"]
            parent_id = tenant["parent_id"]
            self.tenants[tenant_id] = tenant
            self.children.setdefault(tenant_id, [])
            if parent_id == tenant_id:
                self.levels[tenant_id] = 0
            else:
                self.children.setdefault(parent_id, []).append(tenant_id)
                self.levels[tenant_id] = self.levels[parent_id] + 1
                self.tenants[parent_id]["has_children"] = True
            tenant["_seq"] = len(self.tenants)
            self._subtree_cache.clear()

    def touch_tenant(self, tenant: Tenant) -> None:
        """Record a change: a new version and a new ``updated_at``."""
        tenant["version"] += 1
        tenant["_updated_us"] = self.tick()

    def subtree(self, root_id: str) -> list[str]:
        """Ids of ``root_id`` and all its descendants, by level, then age."""
        with self.lock:
            cached = self._subtree_cache.get(root_id)
            if cached is None:
                found = [root_id]
                for tenant_id in found:
                    found.extend(self.children.get(tenant_id, ()))
                cached = sorted(found, key=self.order_key)
                self._subtree_cache[root_id] = cached
            return cached

    def order_key(self, tenant_id: str) -> tuple[int, int]:
        return (self.levels[tenant_id], self.tenants[tenant_id]["_seq"])

    # Acronis tokens ---------------------------------------------------

    def issue_token(self, token: str) -> float:
        """Remember a new access token; return when it expires."""
        with self.lock:
            expires = self.clock() + self.options.token_ttl
            self.tokens[token] = expires
            return expires

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expires = self.tokens.get(token)
            return expires is not None and self.clock() < expires

    # Faults -----------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(
        self, service: str, method: str, path: str, body: str
    ) -> Fault | None:
        """The first fault matching this call, counting it down."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(service, method, path, body):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
            return None


def current_state() -> SandboxState:
    """The state of the app serving the current request."""
    state: SandboxState = current_app.extensions["sandbox"]
    return state


def iso_utc(micros: int, *, zone: str = "", digits: int = 6) -> str:
    """Format microseconds since the epoch; ``digits`` of fraction, 0 for none."""
    moment = EPOCH + micros * MICROSECOND
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += f".{moment.microsecond:06d}"[: digits + 1]
    return text + zone


def parse_iso(value: str, *, need_zone: bool = False) -> int | None:
    """Microseconds since the epoch, or None when ``value`` is not ISO 8601.

    A time without zone is taken as UTC unless ``need_zone`` is set.
    """
    if "T" not in value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        if need_zone:
            return None
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MICROSECOND
