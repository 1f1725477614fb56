"""What the browser tests share besides fixtures: the stack, forms, secret checks.

Plain HTTP (``requests``) does what needs no browser: completing the setup
for a module that tests something else, logging in, and reading pages to
look for secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests
from playwright.sync_api import Page
from rq.job import Job
from rq.queue import Queue

from sandbox.process import RunningSandbox

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "correct horse battery staple"
# The generated tenant that gets a hand-made look-alike client in AlgaPSA.
LOOKALIKE_OF = "Blue River Engineering Inc."
LOOKALIKE_NAME = "BLUE RIVER ENGINEERING Incorporated"
TIMEOUT = 15
SCREENSHOTS = Path(__file__).parent / "screenshots"
_CSRF_INPUT = re.compile(r"<input[^>]*\bname=\"csrf_token\"[^>]*>")
_VALUE = re.compile(r"\bvalue=\"([^\"]+)\"")


@dataclass
class Stack:
    """A running stack and what a test needs to drive and inspect it."""

    base_url: str
    sandbox: RunningSandbox
    redis: redis.Redis
    env: dict[str, str]
    data_dir: Path
    tenant: dict[str, Any]
    lookalike: dict[str, Any]
    logs: list[Path] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def prefix(self) -> str:
        return self.env["SYNC_REDIS_PREFIX"]

    @property
    def queue(self) -> str:
        return self.env["SYNC_QUEUE"]

    def secrets(self) -> dict[str, str]:
        """Every secret the stack knows, by name: none may ever be shown."""
        given = self.sandbox.settings
        return {
            "ACRONIS_CLIENT_SECRET": given["ACRONIS_CLIENT_SECRET"],
            "ALGA_API_TOKEN": given["ALGA_API_TOKEN"],
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
        }

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs)


class Camera:
    """Saves a step's page as ``screenshots/<name>.png`` and keeps its HTML."""

    def __init__(self) -> None:
        self.html: dict[str, str] = {}

    def __call__(self, page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.html[name] = page.content()
        return path


def remote_values(stack: Stack) -> dict[str, str]:
    """The wizard's fields for both remotes, filled to reach the stack's sandbox."""
    given = stack.sandbox.settings
    return {
        "acronis_base_url": given["ACRONIS_BASE_URL"],
        "acronis_client_id": given["ACRONIS_CLIENT_ID"],
        "acronis_client_secret": given["ACRONIS_CLIENT_SECRET"],
        "acronis_tenant_id": given["ACRONIS_TENANT_ID"],
        "alga_base_url": given["ALGA_BASE_URL"],
        "alga_api_token": given["ALGA_API_TOKEN"],
    }


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF_INPUT.search(html)
    value = _VALUE.search(found.group(0)) if found else None
    assert value is not None, "the page has no form with a CSRF token"
    return value.group(1)


def setup_token(stack: Stack) -> str:
    """The token the service made to guard its setup, read from its DATA_DIR."""
    return (stack.data_dir / "setup-token").read_text().strip()


def complete_setup(stack: Stack) -> None:
    """Save the setup over plain HTTP, as the wizard's form would."""
    session = requests.Session()
    params = {"token": setup_token(stack)}
    page = session.get(stack.url("/setup"), params=params, timeout=TIMEOUT)
    form = {
        **remote_values(stack),
        "sync_cron": "",
        "sync_timezone": "UTC",
        "admin_username": ADMIN_USERNAME,
        "admin_password": ADMIN_PASSWORD,
        "admin_password_again": ADMIN_PASSWORD,
        "csrf_token": csrf_token(page.text),
    }
    saved = session.post(stack.url("/setup"), data=form, timeout=TIMEOUT)
    assert saved.status_code == 200, saved.text


def log_in(
    stack: Stack, password: str = ADMIN_PASSWORD
) -> tuple[requests.Session, requests.Response]:
    """Post the login form from a fresh session; the answer is not followed."""
    session = requests.Session()
    page = session.get(stack.url("/login"), timeout=TIMEOUT)
    form = {
        "username": ADMIN_USERNAME,
        "password": password,
        "csrf_token": csrf_token(page.text),
    }
    answer = session.post(
        stack.url("/login"), data=form, timeout=TIMEOUT, allow_redirects=False
    )
    return session, answer


def admin_session(stack: Stack) -> requests.Session:
    """A plain HTTP session logged in as the admin."""
    session, answer = log_in(stack)
    assert answer.status_code == 302, answer.text
    return session


def leaked(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the secrets that appear in ``text``."""
    return sorted(name for name, value in secrets.items() if value in text)


def job_texts(stack: Stack) -> dict[str, str]:
    """Each of the stack's jobs as what RQ shows of it: arguments and meta."""
    queue = Queue(stack.queue, connection=stack.redis)
    ids = set(queue.get_job_ids())
    for registry in (
        queue.started_job_registry,
        queue.finished_job_registry,
        queue.failed_job_registry,
        queue.scheduled_job_registry,
        queue.deferred_job_registry,
    ):
        ids.update(registry.get_job_ids(cleanup=False))
    jobs = Job.fetch_many(sorted(ids), connection=stack.redis)
    return {
        job.id: repr((job.description, job.args, job.kwargs, job.meta))
        for job in jobs
        if job is not None
    }


def stored_texts(stack: Stack) -> dict[str, str]:
    """Everything the stack keeps under its Redis prefix, as raw text by key."""
    found: dict[str, str] = {}
    for key in stack.redis.scan_iter(f"{stack.prefix}:*"):
        found[key.decode()] = repr(_read_any(stack.redis, key))
    return found


def _read_any(connection: redis.Redis, key: bytes) -> object:
    kind = connection.type(key)
    if kind == b"hash":
        return connection.hgetall(key)
    if kind == b"set":
        return connection.smembers(key)
    if kind == b"list":
        return connection.lrange(key, 0, -1)
    if kind == b"zset":
        return connection.zrange(key, 0, -1, withscores=True)
    return connection.get(key) if kind == b"string" else None
