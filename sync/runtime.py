"""Wire the engine's parts together from one Settings object."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from sync.acronis import AcronisClient, MemoryTokenCache, RedisTokenCache, TokenCache
from sync.alga import AlgaClient
from sync.engine import Engine
from sync.errors import MappingError
from sync.http import CallCounter
from sync.keys import Keys
from sync.links import LinkStore, MemoryLinkStore, RedisLinkStore
from sync.mapping import Mapping
from sync.mapping_file import load_mapping
from sync.settings import Settings

log = logging.getLogger(__name__)

REDIS_PING_TIMEOUT = 2.0


@dataclass
class Runtime:
    """Everything a command needs, built once."""

    settings: Settings
    counter: CallCounter
    redis: redis.Redis | None
    links: LinkStore
    acronis: AcronisClient
    alga: AlgaClient
    mapping: Mapping

    def engine(self) -> Engine:
        return Engine(
            self.settings,
            acronis=self.acronis,
            alga=self.alga,
            links=self.links,
            mapping=self.mapping,
            counter=self.counter,
        )


def redacted(url: str) -> str:
    """``url`` without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def connect_redis(url: str) -> redis.Redis | None:
    """A Redis connection that answers, or None (and one log line saying so)."""
    if not url:
        log.info("REDIS_URL is empty: keeping links and tokens in this process only")
        return None
    client = redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_PING_TIMEOUT, socket_timeout=30
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        log.warning(
            "Redis at %s does not answer (%s): keeping links and tokens in this "
            "process only; lost links are recovered from AlgaPSA on the next run",
            redacted(url),
            type(exc).__name__,
        )
        return None
    return client


def require_marker(settings: Settings, mapping: Mapping) -> Mapping:
    """Refuse a mapping that writes no tenant id into the key field.

    Without it a lost link could only be found again by name, and a renamed
    tenant would get a second client.
    """
    key = settings.alga_key_field
    if not mapping.references_tenant_id(key):
        raise MappingError(
            f"{mapping.source}: the {key} rule must carry the tenant id "
            f'(e.g. template: "... tenant {{id}}"), or ALGA_COMPANY_KEY_FIELD '
            "must name a field whose rule does: it is how lost links are found"
        )
    return mapping


def build_runtime(settings: Settings, *, mapping: Mapping | None = None) -> Runtime:
    """Connect to Redis when it answers and build the clients and stores."""
    keys = Keys(settings.redis_prefix)
    counter = CallCounter()
    connection = connect_redis(settings.redis_url)
    links: LinkStore
    tokens: TokenCache
    if connection is None:
        links, tokens = MemoryLinkStore(), MemoryTokenCache()
    else:
        links, tokens = RedisLinkStore(connection, keys), RedisTokenCache(connection)
    return Runtime(
        settings=settings,
        counter=counter,
        redis=connection,
        links=links,
        acronis=AcronisClient(settings, counter=counter, token_cache=tokens, keys=keys),
        alga=AlgaClient(settings, counter=counter),
        mapping=require_marker(
            settings, mapping or load_mapping(settings.mapping_file)
        ),
    )
