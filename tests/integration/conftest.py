"""Fixtures for end-to-end tests: a real Redis and sandbox processes over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from sandbox.process import REPO, RunningSandbox, run_sandbox
from sync.settings import Settings

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/0"
SETTING_NAMES = {str(field.alias) for field in Settings.model_fields.values()}


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.fail(f"no Redis at {url}: run the tests with `make test`")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own, removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"{prefix}:*"):
        connection.delete(key)


@dataclass
class Sandbox:
    """A running sandbox plus the environment a sync process needs to reach it."""

    running: RunningSandbox
    env: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.running, name)


@pytest.fixture
def start_sandbox(
    redis_url: str, redis_prefix: str
) -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox process with the given options; stopped after the test."""
    with ExitStack() as stack:

        def start(*options: str, seed: int = 7) -> Sandbox:
            running = stack.enter_context(run_sandbox(*options, seed=seed))
            env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
            env.update(
                running.settings,
                REDIS_URL=redis_url,
                SYNC_REDIS_PREFIX=redis_prefix,
                MAPPING_FILE=str(REPO / "mapping.yaml"),
                PYTHONPATH=str(REPO),
            )
            return Sandbox(running, env)

        yield start


@dataclass
class SyncRun:
    code: int
    summary: dict[str, Any]
    stderr: str


def run_sync(env: dict[str, str], *args: str) -> SyncRun:
    """Run ``python -m sync reconcile --json`` as a user would, and read its summary."""
    command = [sys.executable, "-m", "sync", "--env-file", os.devnull, "reconcile"]
    done = subprocess.run(
        [*command, "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
        check=False,
    )
    assert done.stdout.strip(), f"no summary printed; stderr:\n{done.stderr}"
    return SyncRun(done.returncode, json.loads(done.stdout), done.stderr)
