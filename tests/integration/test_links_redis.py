"""The Redis link store answers which tenant holds a client."""

from __future__ import annotations

import pytest
import redis

from sync.keys import Keys
from sync.links import Link, RedisLinkStore

pytestmark = pytest.mark.integration


def test_tenant_of_follows_claims_and_removals(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisLinkStore(redis.Redis.from_url(redis_url), Keys(redis_prefix))
    store.claim(Link(tenant_id="t-1", client_id="c-1"))

    assert store.tenant_of("c-1") == "t-1"
    assert store.tenant_of("c-2") is None

    store.claim(Link(tenant_id="t-1", client_id="c-2"))
    assert store.tenant_of("c-1") is None
    assert store.tenant_of("c-2") == "t-1"

    store.remove("t-1")
    assert store.tenant_of("c-2") is None
