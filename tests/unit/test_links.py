"""The in-process link store answers which tenant holds a client."""

from __future__ import annotations

from sync.links import Link, MemoryLinkStore


def test_tenant_of_follows_claims_and_removals() -> None:
    store = MemoryLinkStore()
    store.claim(Link(tenant_id="t-1", client_id="c-1"))

    assert store.tenant_of("c-1") == "t-1"
    assert store.tenant_of("c-2") is None

    store.claim(Link(tenant_id="t-1", client_id="c-2"))
    assert store.tenant_of("c-1") is None
    assert store.tenant_of("c-2") == "t-1"

    store.remove("t-1")
    assert store.tenant_of("c-2") is None
