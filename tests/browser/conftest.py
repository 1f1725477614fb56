"""Fixtures for the browser tests: a whole stack per module, and headless Chromium.

The stack is what a user runs: a sandbox standing in for both remotes,
gunicorn serving the app in setup mode (no remote setting in its
environment, an empty DATA_DIR), one ``rq worker``, a Redis key prefix and a
queue of the module's own. Their output goes to log files, so the tests can
look for secrets in them.

The browser is Debian's ``/usr/bin/chromium``; Playwright never downloads one.
Where it is missing the tests fail and say how to install it, unless
``SKIP_BROWSER_TESTS=1`` asks to skip them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import BrowserContext, Page, ViewportSize, sync_playwright

from bench.webhooks import wait_until_up
from sandbox.process import REPO, RunningSandbox, free_port, run_sandbox
from tests.browser.support import (
    LOOKALIKE_NAME,
    LOOKALIKE_OF,
    SCREENSHOTS,
    Camera,
    Stack,
)
from tests.integration.conftest import SETTING_NAMES, redis_url
from tests.integration.worker_support import RQ, drop_queue, stop

__all__ = ["redis_url"]  # the session fixture, shared with the integration tests

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_VARIABLE = "SKIP_BROWSER_TESTS"
GUNICORN = Path(sys.executable).parent / "gunicorn"
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
# Long enough for a page that waits on a sandbox call, short enough to fail fast.
ACTION_TIMEOUT_MS = 15_000
SANDBOX_SEED = 7
SANDBOX_TENANTS = "6"
# A service still running this long after SIGTERM is killed: the tests need
# nothing from a graceful stop, only that every process is gone.
HALT_SECONDS = 5


STEP = "step"
FAILED_STEP = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{STEP}: one step of a walk; skipped once an earlier step failed"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and item.get_closest_marker(STEP) and item.parent is not None:
        item.parent.stash.setdefault(FAILED_STEP, item.name)
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a step after a failed one: it would only wait on a page never shown."""
    if item.get_closest_marker(STEP) is None or item.parent is None:
        return
    failed = item.parent.stash.get(FAILED_STEP, None)
    if failed is not None:
        pytest.skip(f"the earlier step {failed} failed")


def chromium_problem() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if CHROMIUM.exists():
        return None
    return (
        f"{CHROMIUM} is missing: install Debian's chromium "
        "(`apt-get install chromium`, which `make test` does as root), or set "
        f"{SKIP_VARIABLE}=1 to skip the browser tests on this machine"
    )


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; fails the test when missing, unless skipping is asked."""
    problem = chromium_problem()
    if os.environ.get(SKIP_VARIABLE, "") == "1":
        pytest.skip(f"{SKIP_VARIABLE}=1")
    if problem is not None:
        pytest.fail(problem)
    return CHROMIUM


def stack_env(redis_url: str, data_dir: Path) -> dict[str, str]:
    """The services' environment: Redis, a fresh DATA_DIR, no remote settings."""
    tag = uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update(
        PYTHONPATH=str(REPO),
        REDIS_URL=redis_url,
        SYNC_REDIS_PREFIX=f"test-browser-{tag}",
        SYNC_QUEUE=f"test-browser-{tag}",
        DATA_DIR=str(data_dir),
        MAPPING_FILE=str(REPO / "mapping.yaml"),
        SYNC_JOB_TIMEOUT="10",
        SYNC_RETRY_DELAYS="1",
        HTTP_MAX_ATTEMPTS="1",
        ACRONIS_POLL_SECONDS="0",
        WEB_CONCURRENCY="2",
    )
    return env


def launch(
    stack: ExitStack, command: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a process group of its own, its output in ``log``."""
    out = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(halt, process)
    return process


def halt(process: subprocess.Popen[bytes]) -> None:
    """Ask a process group to stop, and kill it when it has not within seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(HALT_SECONDS)
    except subprocess.TimeoutExpired:
        stop(process, signal.SIGKILL)


def add_lookalike(sandbox: RunningSandbox) -> tuple[dict[str, Any], dict[str, Any]]:
    """Type by hand, as an MSP would have, a client for one generated tenant."""
    tenant = next(t for t in sandbox.customers() if t["name"] == LOOKALIKE_OF)
    body = {"client_name": LOOKALIKE_NAME, "billing_cycle": "monthly"}
    client: dict[str, Any] = sandbox.control("POST", "/alga/clients", body)
    return tenant, client


def forget_stack(connection: redis.Redis, env: dict[str, str]) -> None:
    """Remove the module's keys and queue from the shared Redis."""
    prefix = env["SYNC_REDIS_PREFIX"]
    # flask-limiter puts its own words before the login counters' prefix.
    for pattern in (f"{prefix}:*", f"LIMITS:*/{prefix}:*"):
        for key in connection.scan_iter(pattern):
            connection.delete(key)
    drop_queue(connection, env["SYNC_QUEUE"])


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Sandbox, gunicorn in setup mode and an RQ worker; stopped after the module."""
    root = tmp_path_factory.mktemp("stack")
    env = stack_env(redis_url, root / "data")
    connection = redis.Redis.from_url(redis_url)
    with ExitStack() as processes:
        processes.callback(forget_stack, connection, env)
        sandbox = processes.enter_context(
            run_sandbox("--tenants", SANDBOX_TENANTS, seed=SANDBOX_SEED)
        )
        tenant, lookalike = add_lookalike(sandbox)
        port = free_port()
        web_env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
        gunicorn = [str(GUNICORN), "-c", "web/gunicorn.conf.py", "web:create_app()"]
        web = launch(processes, gunicorn, web_env, root / "web.log")
        worker = [str(RQ), "worker", "--with-scheduler", "--url", redis_url]
        worker += ["--worker-class", "worker.jobs.SyncWorker", env["SYNC_QUEUE"]]
        launch(processes, worker, env, root / "worker.log")
        base_url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base_url}/health", web)
        yield Stack(
            base_url=base_url,
            sandbox=sandbox,
            redis=connection,
            env=env,
            data_dir=root / "data",
            tenant=tenant,
            lookalike=lookalike,
            logs=[root / "web.log", root / "worker.log"],
        )


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile, for one module."""
    with (
        tempfile.TemporaryDirectory(prefix="chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def page(browser: BrowserContext) -> Page:
    """The one tab a module's steps walk through, in order."""
    return browser.pages[0] if browser.pages else browser.new_page()


@pytest.fixture(scope="module")
def screenshot() -> Camera:
    """The module's camera; its HTML is searched for secrets at the end."""
    SCREENSHOTS.mkdir(exist_ok=True)
    return Camera()
