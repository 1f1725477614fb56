"""The Flask app that serves both fake remotes, and a way to run it in a thread.

Before any remote route runs, the app counts the call under its route
template, waits the configured latency, and answers a forced fault or a
random 503 when one applies. Control routes under ``/_sandbox`` skip all
of that.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from sandbox import acronis, alga, alga_contacts, control
from sandbox.state import Fault, Options, SandboxState, current_state

ACRONIS_PREFIX = "/acronis/api/2"
ALGA_PREFIX = "/alga/api/v1"
CONTROL_PREFIX = "/_sandbox"
SERVICES = (("acronis", ACRONIS_PREFIX), ("alga", ALGA_PREFIX))
ALGA_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
}
NOT_FOUND_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8">'
    "<title>404: This page could not be found.</title></head>"
    "<body><div><h1>404</h1><h2>This page could not be found.</h2></div>"
    "</body></html>"
)

# A pattern that matches nothing, for faults made up on the spot.
NEVER = re.compile(r"(?!)")

# Locations, tags and contacts share the Alga prefix, key check and limiter.
alga.blueprint.register_blueprint(alga_contacts.blueprint)


def create_app(state: SandboxState | Options | None = None) -> Flask:
    """A sandbox app over ``state`` (or a fresh state built from options)."""
    if not isinstance(state, SandboxState):
        state = SandboxState(state or Options())
    app = Flask(__name__)
    provider = app.json
    if isinstance(provider, DefaultJSONProvider):
        # Keep keys in the order the real services send them.
        provider.sort_keys = False
        provider.ensure_ascii = False
    app.extensions["sandbox"] = state
    app.register_blueprint(acronis.blueprint, url_prefix=ACRONIS_PREFIX)
    app.register_blueprint(alga.blueprint, url_prefix=ALGA_PREFIX)
    app.register_blueprint(control.blueprint, url_prefix=CONTROL_PREFIX)
    app.before_request(before_remote_call)
    app.register_error_handler(HTTPException, answer_http_error)
    return app


def service_of(path: str) -> tuple[str, str] | None:
    """Which remote a path belongs to, and the path below its prefix."""
    for name, prefix in SERVICES:
        if path == prefix or path.startswith(prefix + "/"):
            return name, path[len(prefix) :] or "/"
    return None


def route_template(prefix: str, below: str) -> str:
    """``/clients/{id}`` for ``/clients/<client_id>``; the raw path when unmatched."""
    rule = request.url_rule
    if rule is None:
        return below
    template = rule.rule[len(prefix) :]
    for argument in rule.arguments:
        template = template.replace(f"<{argument}>", "{id}")
    return template


def before_remote_call() -> tuple[Response, int] | None:
    found = service_of(request.path)
    if found is None:
        return None
    service, below = found
    prefix = dict(SERVICES)[service]
    state = current_state()
    with state.lock:
        state.stats.add(service, request.method, route_template(prefix, below))
        latency = state.options.latency_ms
    if latency > 0:
        time.sleep(latency / 1000)
    text = request.get_data(cache=True, as_text=True)
    fault = state.take_fault(service, request.method, below, text)
    if fault is not None:
        return fault_answer(service, fault)
    if state.roll_failure():
        return fault_answer(service, Fault(service, 503, path=NEVER))
    return None


def fault_answer(service: str, fault: Fault) -> tuple[Response, int]:
    """The error a remote would send with status ``fault.status``."""
    status = fault.status
    message = f"Injected failure (status {status})"
    if service == "acronis":
        response = jsonify(acronis.acronis_error(status, f"http_{status}", message))
    else:
        code = ALGA_CODES.get(
            status, "SERVICE_UNAVAILABLE" if status > 500 else "ERROR"
        )
        response = jsonify(error={"code": code, "message": message})
    if fault.retry_after is not None:
        response.headers["Retry-After"] = fault.retry_after
    return response, status


def answer_http_error(error: HTTPException) -> Any:
    """Acronis answers unknown routes in JSON; AlgaPSA (and the rest) in HTML."""
    status = error.code or 500
    found = service_of(request.path)
    if found is not None and found[0] == "acronis":
        code = "not_found" if status == 404 else f"http_{status}"
        return jsonify(
            acronis.acronis_error(status, code, error.description or "")
        ), status
    if status == 404:
        return Response(NOT_FOUND_PAGE, status=404, mimetype="text/html")
    return error


def serve_in_thread(
    state_or_options: SandboxState | Options | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> tuple[str, Callable[[], None]]:
    """Serve a sandbox on a background thread; return its URL and a stop function."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, create_app(state_or_options), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="sandbox", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return f"http://{host}:{server.server_port}", stop
