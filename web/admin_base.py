"""What every admin page shares: the ``/admin`` blueprint, its guard, the service.

Every page under ``/admin`` needs a live admin session (see
:mod:`web.admin_auth`); without one the browser is sent to ``/login``, and
before the setup is done to ``/``. A form sent without its CSRF token, or
with an expired one, gets a readable page with a link back. Pages that
read the remotes use the service's one runtime under its lock, since its
clients are not shared.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response as BaseResponse

from sync.errors import ConfigError, SyncError
from sync.runtime import Runtime
from web.admin_auth import csrf_refused, signed_in
from web.service import Service, services
from web.setup import PAGE_HEADERS

log = logging.getLogger(__name__)

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 25

blueprint.register_error_handler(CSRFError, csrf_refused)


@blueprint.before_request
def _require_admin() -> BaseResponse | None:
    if services().current() is None:
        return redirect("/")
    if signed_in():
        return None
    return redirect(url_for("login.login_page", next=request.full_path.rstrip("?")))


@blueprint.after_request
def _page_headers(response: Response) -> Response:
    response.headers.update(PAGE_HEADERS)
    return response


def current() -> Service:
    """The service; the guard has made sure there is one."""
    found = services().current()
    assert found is not None, "the admin guard lets no request in before setup"
    return found


@contextmanager
def runtime() -> Iterator[Runtime]:
    """The engine's runtime, held for this request alone."""
    service = current()
    with service.runtime_lock:
        yield service.runtime()


def refused(exc: ConfigError | SyncError | ValueError, what: str) -> None:
    """Show why ``what`` did not happen; the message names what to do."""
    log.warning("admin: %s refused: %s", what, exc)
    flash(f"{what}: {exc}", "error")


def page_number(raw: str | None) -> int:
    """A 1-based page number from a query string; junk means the first page."""
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1
