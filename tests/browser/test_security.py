"""The admin side's locks, tried over plain HTTP against a set-up stack.

Every route the app has is asked for without a session; only the public
pages may answer. Forms without their CSRF token are refused, wrong
passwords are slowed down, and no page shows a secret. The login throttle
runs last: once it trips, this module's address may not log in again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from werkzeug.routing import Rule

from tests.browser.support import (
    Stack,
    admin_session,
    complete_setup,
    csrf_token,
    leaked,
    log_in,
)
from web import create_app

pytestmark = pytest.mark.integration

TIMEOUT = 15
# Open to anyone: the setup (closed once saved), the login, the API's
# documentation, static files and the liveness probe.
PUBLIC = re.compile(r"^/(setup|login|health|docs|openapi\.json|static/)|^/$")
# Read by probes and Prometheus, which carry no session: counts only.
MACHINE = frozenset({"/ready", "/metrics"})
# Where a refused page may send the browser.
REFUSED_TO = re.compile(r"^(/login(\?.*)?|/|/setup)$")
WRONG_PASSWORDS = 5
ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@pytest.fixture(scope="module")
def ready(stack: Stack) -> Stack:
    """The stack, set up through the setup form."""
    complete_setup(stack)
    return stack


@pytest.fixture(scope="module")
def rules(ready: Stack) -> list[Rule]:
    """Every route of the app as the stack's settings build it."""
    app = create_app(environ=ready.env)
    return sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule)


@pytest.fixture(scope="module")
def admin(ready: Stack) -> Iterator[requests.Session]:
    session = admin_session(ready)
    yield session
    session.close()


def sample_path(rule: Rule, stack: Stack) -> str:
    """The rule's path with every argument filled in with something plausible."""
    return ARGUMENT.sub(lambda _: stack.tenant["id"], rule.rule)


def methods(rule: Rule) -> set[str]:
    return set(rule.methods or ())


def refused(answer: requests.Response) -> bool:
    """A refusal: an error status, or a redirect to the login or the start."""
    if answer.is_redirect:
        target = answer.headers["Location"].split("://", 1)[-1]
        return bool(REFUSED_TO.match("/" + target.split("/", 1)[-1]))
    return answer.status_code >= 400


def test_only_public_pages_answer_without_a_session(
    ready: Stack, rules: list[Rule]
) -> None:
    opened: list[str] = []
    for rule in rules:
        path = sample_path(rule, ready)
        if PUBLIC.match(path) or path in MACHINE:
            continue
        for method in sorted(methods(rule) & {"GET", "POST"}):
            answer = requests.request(
                method, ready.url(path), timeout=TIMEOUT, allow_redirects=False
            )
            if not refused(answer):
                opened.append(f"{method} {path} -> {answer.status_code}")

    assert len(rules) > 20
    assert opened == []


def test_admin_pages_send_a_stranger_to_the_login(ready: Stack) -> None:
    for path in ("/admin", "/admin/links", "/admin/actions", "/admin/settings"):
        answer = requests.get(ready.url(path), timeout=TIMEOUT, allow_redirects=False)

        assert answer.status_code == 302
        assert answer.headers["Location"].startswith("/login?next=")


def test_a_form_without_its_csrf_token_is_refused(
    ready: Stack, admin: requests.Session
) -> None:
    token = csrf_token(admin.get(ready.url("/admin/actions"), timeout=TIMEOUT).text)

    bare = admin.post(
        ready.url("/admin/onboarding/link-only"),
        data={"link_only": "off"},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    signed = admin.post(
        ready.url("/admin/onboarding/link-only"),
        data={"link_only": "on", "csrf_token": token},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    login = requests.post(
        ready.url("/login"),
        data={"username": "admin", "password": "x"},
        timeout=TIMEOUT,
    )

    assert bare.status_code == 400
    assert signed.status_code == 302
    assert login.status_code == 400


def test_no_page_shows_a_secret(
    ready: Stack, rules: list[Rule], admin: requests.Session
) -> None:
    pages = {
        path: admin.get(ready.url(path), timeout=TIMEOUT).text
        for path in sorted(
            {
                sample_path(rule, ready)
                for rule in rules
                if "GET" in (rule.methods or ())
            }
        )
        if not path.startswith(("/static/", "/docs/assets/"))
    }
    shown = {path: leaked(html, ready.secrets()) for path, html in pages.items()}

    assert (
        "/admin/settings" in pages
        and "ACRONIS_CLIENT_SECRET" in pages["/admin/settings"]
    )
    assert {path: names for path, names in shown.items() if names} == {}


def test_wrong_passwords_are_slowed_down(ready: Stack) -> None:
    wrong = [log_in(ready, "not the password")[1] for _ in range(WRONG_PASSWORDS)]

    held, refused_answer = log_in(ready, "still not the password")
    _, right = log_in(ready)

    assert [answer.status_code for answer in wrong] == [401] * WRONG_PASSWORDS
    assert refused_answer.status_code == 429
    assert int(refused_answer.headers["Retry-After"]) > 0
    assert right.status_code == 429
    held.close()
