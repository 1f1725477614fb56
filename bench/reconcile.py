"""Measure a large sync against the sandbox, beside a naive strategy.

Starts two sandboxes with the same generated data and the same latency. On
one, the engine runs a first sync and then a no-op re-sync. On the other, a
naive middleware does the same two passes: for each tenant it searches
AlgaPSA for a client of that name, then creates or updates it. Calls are
counted by the sandboxes themselves. Prints wall time, calls and writes of
each pass, and checks the targets.

Run with ``make bench`` (it provides a Redis); options: ``--help``.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from sandbox.process import RunningSandbox, run_sandbox
from sync.acronis import is_customer
from sync.runtime import Runtime, build_runtime
from sync.settings import Settings

MAX_NOOP_CALLS = 110
MIN_ADVANTAGE = 100


@dataclass(frozen=True)
class Pass:
    """One measured sync pass."""

    name: str
    seconds: float
    calls: int
    writes: int


@contextmanager
def sandbox(tenants: int, latency_ms: int, redis_url: str) -> Iterator[Box]:
    # A budget far above what the run spends, so pacing never slows either
    # strategy: the figures measure calls and latency alone.
    options = ["--tenants", str(tenants), "--latency-ms", str(latency_ms)]
    options += ["--rate-per-minute", "1000000"]
    with run_sandbox(*options) as running:
        prefix = f"bench-{uuid.uuid4().hex}"
        env = {**running.settings, "REDIS_URL": redis_url, "SYNC_REDIS_PREFIX": prefix}
        yield Box(running, env)
        connection = redis.Redis.from_url(redis_url)
        for key in connection.scan_iter(f"{prefix}:*"):
            connection.delete(key)


@dataclass(frozen=True)
class Box:
    """A sandbox and the settings a sync against it uses."""

    sandbox: RunningSandbox
    env: dict[str, str]


def measure(name: str, box: Box, work: Callable[[], object]) -> Pass:
    before = box.sandbox.stats()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    after = box.sandbox.stats()
    return Pass(
        name,
        seconds,
        calls=after["total"] - before["total"],
        writes=after["writes"]["alga"] - before["writes"]["alga"],
    )


def runtime_for(box: Box, concurrency: int) -> Runtime:
    env = {**box.env, "SYNC_WRITE_CONCURRENCY": str(concurrency)}
    return build_runtime(Settings.from_env(env))


def ours(box: Box, concurrency: int) -> list[Pass]:
    def sync() -> None:
        summary = runtime_for(box, concurrency).engine().reconcile()
        if not summary.ok:
            raise SystemExit(f"the sync failed: {summary.log_line()}")

    return [
        measure("engine: first sync", box, sync),
        measure("engine: no-op re-sync", box, sync),
    ]


def naive(box: Box, concurrency: int) -> list[Pass]:
    """Search each tenant's client by name, then create or update it."""
    runtime = runtime_for(box, concurrency)

    def upsert(tenant: dict[str, Any]) -> None:
        mapped = runtime.mapping.map_tenant(tenant)
        client = runtime.alga.find_by_exact_name(mapped.client["client_name"])
        if client is None:
            runtime.alga.create_client(mapped.client)
        else:
            runtime.alga.update_client(client["client_id"], mapped.client)

    def sync() -> None:
        tenants = runtime.acronis.list_tenants().tenants
        wanted = [t for t in tenants if is_customer(t) and t["enabled"]]
        wanted = [t for t in wanted if t.get("deleted_at") is None]
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(upsert, wanted))

    return [
        measure("naive: first sync", box, sync),
        measure("naive: no-op re-sync", box, sync),
    ]


def report(passes: list[Pass]) -> bool:
    print(f"\n{'pass':<24}{'wall time':>12}{'API calls':>12}{'writes':>10}")
    for item in passes:
        print(
            f"{item.name:<24}{item.seconds:>10.1f} s{item.calls:>12,}{item.writes:>10,}"
        )
    noop = passes[1]
    naive_noop = passes[3]
    advantage = naive_noop.calls / max(noop.calls, 1)
    print(f"\nno-op re-sync: {noop.calls} calls, {noop.writes} writes")
    print(f"naive no-op re-sync makes {advantage:.0f}x as many calls")
    met = (
        noop.writes == 0 and noop.calls <= MAX_NOOP_CALLS and advantage >= MIN_ADVANTAGE
    )
    print("targets met" if met else "TARGETS MISSED")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    redis.Redis.from_url(redis_url).ping()

    print(
        f"{args.tenants:,} customer tenants, {args.latency_ms} ms per call, "
        f"{args.concurrency} concurrent writers"
    )
    with sandbox(args.tenants, args.latency_ms, redis_url) as box:
        passes = ours(box, args.concurrency)
    with sandbox(args.tenants, args.latency_ms, redis_url) as box:
        passes += naive(box, args.concurrency)
    return 0 if report(passes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
