"""The link store: which AlgaPSA client belongs to which Acronis tenant.

AlgaPSA has no external-id field, so the link is ours to keep. A link also
records the fingerprint of what was last written, whether the client's
location exists, and the last outcome, so a person can see what happened.
One client is never linked to two tenants: :meth:`LinkStore.claim` refuses.
The store also keeps the tenants an admin excluded from the sync.

Two implementations share one contract: :class:`RedisLinkStore` for the
service and :class:`MemoryLinkStore` for a one-shot run without Redis.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

from sync.errors import LinkConflict
from sync.keys import Keys

LOCATION_PRESENT = "present"


@dataclass(frozen=True)
class Link:
    """One tenant's client, and what the last sync of it did.

    ``keep_name`` marks a client a person linked by hand: its name is theirs,
    and the sync never renames it.
    """

    tenant_id: str
    client_id: str
    fingerprint: str = ""
    location: str = ""
    outcome: str = ""
    error: str = ""
    synced_at: str = ""
    keep_name: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Link:
        data: dict[str, Any] = json.loads(text)
        return cls(**{key: data[key] for key in data if key in cls.__annotations__})

    def with_outcome(self, outcome: str, error: str = "", **changes: Any) -> Link:
        """This link after a sync, stamped with the current time."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return replace(self, outcome=outcome, error=error, synced_at=now, **changes)


class LinkStore(Protocol):
    """Where links live; every method is safe to call from several threads."""

    def all(self) -> dict[str, Link]: ...

    def get(self, tenant_id: str) -> Link | None: ...

    def tenant_of(self, client_id: str) -> str | None:
        """The tenant linked to AlgaPSA client ``client_id``, if any."""

    def claim(self, link: Link) -> None:
        """Save ``link``; raise LinkConflict if its client has another tenant."""

    def remove(self, tenant_id: str) -> Link | None: ...

    def clear(self) -> int: ...

    def save_run(self, summary: dict[str, Any]) -> None: ...

    def last_run(self) -> dict[str, Any] | None: ...

    def exclude(self, tenant_id: str) -> bool:
        """Keep the tenant out of every sync; False if it already was."""

    def include(self, tenant_id: str) -> bool:
        """Let the tenant be synced again; False if it was not excluded."""

    def excluded(self) -> set[str]:
        """The ids of every excluded tenant, in lower case."""


def _conflict(link: Link, holder: str) -> LinkConflict:
    return LinkConflict(
        f"AlgaPSA client {link.client_id} is already linked to tenant {holder}; "
        "unlink one of them before syncing this tenant",
        tenant_id=link.tenant_id,
    )


class MemoryLinkStore:
    """Links kept in this process only; lost when it exits."""

    def __init__(self) -> None:
        self._links: dict[str, Link] = {}
        self._holders: dict[str, str] = {}
        self._run: dict[str, Any] | None = None
        self._excluded: set[str] = set()
        self._lock = threading.Lock()

    def all(self) -> dict[str, Link]:
        with self._lock:
            return dict(self._links)

    def get(self, tenant_id: str) -> Link | None:
        with self._lock:
            return self._links.get(tenant_id)

    def tenant_of(self, client_id: str) -> str | None:
        with self._lock:
            return self._holders.get(client_id)

    def claim(self, link: Link) -> None:
        with self._lock:
            holder = self._holders.get(link.client_id)
            if holder is not None and holder != link.tenant_id:
                raise _conflict(link, holder)
            previous = self._links.get(link.tenant_id)
            if previous is not None and previous.client_id != link.client_id:
                self._holders.pop(previous.client_id, None)
            self._holders[link.client_id] = link.tenant_id
            self._links[link.tenant_id] = link

    def remove(self, tenant_id: str) -> Link | None:
        with self._lock:
            link = self._links.pop(tenant_id, None)
            if link is not None:
                self._holders.pop(link.client_id, None)
            return link

    def clear(self) -> int:
        with self._lock:
            count = len(self._links)
            self._links.clear()
            self._holders.clear()
            return count

    def save_run(self, summary: dict[str, Any]) -> None:
        self._run = summary

    def last_run(self) -> dict[str, Any] | None:
        return self._run

    def exclude(self, tenant_id: str) -> bool:
        with self._lock:
            added = tenant_id.lower() not in self._excluded
            self._excluded.add(tenant_id.lower())
            return added

    def include(self, tenant_id: str) -> bool:
        with self._lock:
            removed = tenant_id.lower() in self._excluded
            self._excluded.discard(tenant_id.lower())
            return removed

    def excluded(self) -> set[str]:
        with self._lock:
            return set(self._excluded)


# Atomically: refuse if the client has another tenant; release the tenant's
# previous client; then record both directions. Returns the holder on conflict.
_CLAIM = """
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and holder ~= ARGV[1] then return holder end
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous then
  local old_client = cjson.decode(previous)['client_id']
  if old_client ~= ARGV[2] and redis.call('HGET', KEYS[2], old_client) == ARGV[1] then
    redis.call('HDEL', KEYS[2], old_client)
  end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return false
"""

_REMOVE = """
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if not previous then return false end
local client = cjson.decode(previous)['client_id']
if redis.call('HGET', KEYS[2], client) == ARGV[1] then
  redis.call('HDEL', KEYS[2], client)
end
redis.call('HDEL', KEYS[1], ARGV[1])
return previous
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisLinkStore:
    """Links in two Redis hashes: tenant -> link, and client -> tenant."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._claim = client.register_script(_CLAIM)
        self._remove = client.register_script(_REMOVE)

    def all(self) -> dict[str, Link]:
        raw = self._redis.hgetall(self._keys.links)
        return {_text(key): Link.from_json(value) for key, value in raw.items()}

    def get(self, tenant_id: str) -> Link | None:
        raw = self._redis.hget(self._keys.links, tenant_id)
        return Link.from_json(raw) if raw is not None else None

    def tenant_of(self, client_id: str) -> str | None:
        raw = self._redis.hget(self._keys.link_clients, client_id)
        return _text(raw) if raw is not None else None

    def claim(self, link: Link) -> None:
        keys = [self._keys.links, self._keys.link_clients]
        args = [link.tenant_id, link.client_id, link.to_json()]
        holder = self._claim(keys=keys, args=args)
        if holder is not None:
            raise _conflict(link, _text(holder))

    def remove(self, tenant_id: str) -> Link | None:
        keys = [self._keys.links, self._keys.link_clients]
        raw = self._remove(keys=keys, args=[tenant_id])
        return Link.from_json(raw) if raw is not None else None

    def clear(self) -> int:
        count: int = self._redis.hlen(self._keys.links)
        self._redis.delete(self._keys.links, self._keys.link_clients)
        return count

    def save_run(self, summary: dict[str, Any]) -> None:
        self._redis.set(self._keys.last_run, json.dumps(summary))

    def last_run(self) -> dict[str, Any] | None:
        raw = self._redis.get(self._keys.last_run)
        return json.loads(raw) if raw is not None else None

    def exclude(self, tenant_id: str) -> bool:
        return bool(self._redis.sadd(self._keys.excluded, tenant_id.lower()))

    def include(self, tenant_id: str) -> bool:
        return bool(self._redis.srem(self._keys.excluded, tenant_id.lower()))

    def excluded(self) -> set[str]:
        return {_text(member) for member in self._redis.smembers(self._keys.excluded)}
