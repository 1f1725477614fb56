"""Every error the receiver answers is JSON of one shape.

::

    {"error": {"code": "bad_signature", "message": "what happened and what to do"}}

Routes raise :class:`ApiError`; HTTP errors raised by Flask itself (404,
405, 413, ...) and Redis failures are turned into the same shape here, so a
caller never has to parse an HTML page. Messages never hold a secret.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

log = logging.getLogger(__name__)

# Short codes for the HTTP errors Flask raises on its own.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than success: an HTTP status, a short code and a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The JSON answer for one error."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(error: ApiError) -> Response:
    return error_response(error.status, error.code, error.message, error.headers)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = _CODES.get(status, "error")
    message = error.description or error.name
    headers: dict[str, str] = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(status, code, message, headers)


def _redis_error(error: redis.RedisError) -> Response:
    # The sender is told to retry: nothing was queued, so nothing is lost.
    log.warning(
        "Redis does not answer (%s): refusing the request", type(error).__name__
    )
    return error_response(
        503,
        "queue_unavailable",
        "the job queue (Redis) does not answer; nothing was queued, retry later",
        {"Retry-After": "5"},
    )


def _unexpected(error: Exception) -> Response:
    log.exception("unexpected error while answering a request")
    return error_response(
        500, "internal_error", "the service failed unexpectedly; see its log"
    )


def register_error_handlers(app: Flask) -> None:
    """Answer every error, expected or not, in the one JSON shape."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(redis.RedisError, _redis_error)
    app.register_error_handler(Exception, _unexpected)
