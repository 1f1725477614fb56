"""The HTTP layer both remote clients share.

A :class:`RemoteSession` sends one logical request: it adds timeouts and
credentials, paces itself when the remote says its budget is low, retries
what may succeed later (timeouts, connection errors, 429 and 5xx) with
growing, jittered waits that honor ``Retry-After``, renews credentials once
on a 401, counts every attempt, and turns failures into :mod:`sync.errors`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from sync.errors import (
    AuthError,
    Conflict,
    NotFound,
    RateLimited,
    RemoteRejected,
    RemoteUnavailable,
    RetryableError,
    SyncError,
)

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 120.0
BACKOFF_MULTIPLIER = 0.5
BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class RemoteProblem:
    """What an error body says, read by a service-specific reader."""

    message: str
    code: str | None = None
    details: Any = None


ErrorReader = Callable[[requests.Response], RemoteProblem]


class Credentials(Protocol):
    """Adds credentials to requests and can be told they were refused."""

    def headers(self) -> Mapping[str, str]: ...

    def invalidate(self) -> None: ...


@dataclass
class CallCounter:
    """Thread-safe count of remote calls by service, method and route."""

    _counts: Counter[tuple[str, str, str, int]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, service: str, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(service, method, route, status)] += 1

    def by_method(self) -> dict[str, dict[str, int]]:
        """Calls per service and HTTP method, e.g. ``{"alga": {"GET": 3}}``."""
        result: dict[str, dict[str, int]] = {}
        with self._lock:
            for (service, method, _, _), count in sorted(self._counts.items()):
                per_service = result.setdefault(service, {})
                per_service[method] = per_service.get(method, 0) + count
        return result

    def by_route(self) -> dict[str, int]:
        """Calls per ``"service METHOD route status"``."""
        with self._lock:
            return {
                f"{service} {method} {route} {status}": count
                for (service, method, route, status), count in sorted(
                    self._counts.items()
                )
            }

    def total(self, *, writes_only: bool = False) -> int:
        with self._lock:
            return sum(
                count
                for (_, method, _, _), count in self._counts.items()
                if not writes_only or method in WRITE_METHODS
            )


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Pacer:
    """Slows requests down before a remote's rate-limit budget runs out.

    The remote reports what is left in ``X-RateLimit-Remaining``. Once that
    falls to ``reserve``, requests from every thread are spaced one refill
    interval apart, so the budget is never overdrawn; a fuller budget lifts
    the spacing again.
    """

    def __init__(
        self,
        *,
        reserve: int = 5,
        seconds_per_token: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reserve = reserve
        self.seconds_per_token = seconds_per_token
        self._remaining: int | None = None
        self._next_slot = 0.0
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()

    def before_request(self) -> None:
        with self._lock:
            if self._remaining is None or self._remaining > self.reserve:
                return
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.seconds_per_token
        if slot > now:
            self._sleep(slot - now)

    def after_response(self, response: requests.Response) -> None:
        value = response.headers.get("X-RateLimit-Remaining")
        if value is None:
            return
        try:
            remaining = int(value)
        except ValueError:
            return
        with self._lock:
            self._remaining = remaining


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _wait(state: RetryCallState) -> float:
    """Wait what a 429 asked for, otherwise back off exponentially with jitter."""
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return error.retry_after
    backoff = wait_random_exponential(multiplier=BACKOFF_MULTIPLIER, max=BACKOFF_MAX)
    return float(backoff(state))


class RemoteSession:
    """Sends requests to one remote service under one base URL."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        read_error: ErrorReader,
        counter: CallCounter,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_attempts: int = 5,
        credentials: Credentials | None = None,
        pacer: Pacer | None = None,
        permanent_codes: frozenset[str] = frozenset(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.counter = counter
        self.credentials = credentials
        self._read_error = read_error
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._pacer = pacer
        self._permanent_codes = permanent_codes
        self._http = session or requests.Session()
        self._sleep = sleep

    def request(
        self,
        method: str,
        path: str,
        *,
        route: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send ``method path`` with retries; return a 2xx response or raise."""
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableError),
            stop=stop_after_attempt(self._max_attempts),
            wait=_wait,
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._send_authorized(method, path, route or path, kwargs)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def get_json(self, path: str, *, route: str | None = None, **kwargs: Any) -> Any:
        return self.json_of(self.request("GET", path, route=route, **kwargs))

    def json_of(self, response: requests.Response) -> Any:
        """The JSON body of a successful response, or a clear error."""
        try:
            return response.json()
        except ValueError:
            raise RemoteRejected(
                f"answered {response.status_code} with a body that is not JSON; "
                "check the base URL",
                service=self.service,
                status=response.status_code,
            ) from None

    def _send_authorized(
        self, method: str, path: str, route: str, kwargs: Mapping[str, Any]
    ) -> requests.Response:
        response = self._send(method, path, route, kwargs)
        if response.status_code == 401 and self.credentials is not None:
            self.credentials.invalidate()
            response = self._send(method, path, route, kwargs)
        if response.status_code >= 400:
            raise self._error_for(response)
        return response

    def _send(
        self, method: str, path: str, route: str, kwargs: Mapping[str, Any]
    ) -> requests.Response:
        headers = dict(kwargs.get("headers") or {})
        if self.credentials is not None:
            headers.update(self.credentials.headers())
        options = {**kwargs, "headers": headers}
        if self._pacer is not None:
            self._pacer.before_request()

        started = time.perf_counter()
        try:
            response = self._http.request(
                method, self.base_url + path, timeout=self._timeout, **options
            )
        except requests.RequestException as exc:
            self.counter.add(self.service, method, route, 0)
            raise RemoteUnavailable(
                _unreachable(self.base_url, exc), service=self.service
            ) from exc

        elapsed_ms = (time.perf_counter() - started) * 1000
        self.counter.add(self.service, method, route, response.status_code)
        log.debug(
            "%s %s %s -> %s in %.0f ms",
            self.service,
            method,
            route,
            response.status_code,
            elapsed_ms,
        )
        if self._pacer is not None:
            self._pacer.after_response(response)
        return response

    def _error_for(self, response: requests.Response) -> SyncError:
        status = response.status_code
        problem = self._read_error(response)
        common: dict[str, Any] = {
            "service": self.service,
            "status": status,
            "code": problem.code,
            "details": problem.details,
        }
        if status == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            return RateLimited(problem.message, retry_after=wait, **common)
        if status >= 500 and problem.code not in self._permanent_codes:
            return RemoteUnavailable(problem.message, **common)
        kinds: dict[int, type[RemoteRejected]] = {
            401: AuthError,
            403: AuthError,
            404: NotFound,
            409: Conflict,
        }
        return kinds.get(status, RemoteRejected)(problem.message, **common)


def _unreachable(base_url: str, error: requests.RequestException) -> str:
    if isinstance(error, requests.Timeout):
        return (
            f"no answer from {base_url} in time ({type(error).__name__}): the "
            "service is slow or down; HTTP_CONNECT_TIMEOUT and HTTP_READ_TIMEOUT "
            "set how long to wait"
        )
    if isinstance(error, requests.ConnectionError):
        return f"could not connect to {base_url}: check the URL and the network"
    return f"could not send a request to {base_url}: {type(error).__name__}"


def body_text(response: requests.Response, limit: int = 200) -> str:
    """A short, single-line excerpt of a body, for errors that have no JSON."""
    text = " ".join(response.text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
