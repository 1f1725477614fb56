"""The AlgaPSA client: clients and their locations, over the REST API v1.

AlgaPSA v0.12 renamed companies to clients. This client speaks the current
names (``client_id``, ``client_name``) to its callers whatever the server
uses; the configured endpoint and field names are used only on the wire, so
an older server is served by settings alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from sync.errors import NotFound, RemoteRejected
from sync.http import CallCounter, Pacer, RemoteProblem, RemoteSession, body_text
from sync.settings import Settings

SERVICE = "alga"
ID_FIELD = "client_id"
NAME_FIELD = "client_name"
PAGE_SIZE = 100
# The server's bucket refills 60 tokens a minute.
SECONDS_PER_TOKEN = 1.0
# A 500 with this code is a body the server cannot store; sending it again fails.
PERMANENT_CODES = frozenset({"INTERNAL_CONFIGURATION"})
# Code given to a 404 whose body is not JSON: the route itself is missing.
NO_SUCH_ROUTE = "NO_SUCH_ROUTE"
ROUTE_HINT = "check ALGA_BASE_URL and ALGA_COMPANIES_ENDPOINT"
STATUS_HINTS = {
    401: "check ALGA_API_TOKEN",
    403: "the API key's user lacks a permission in AlgaPSA",
}


def same_name(a: str, b: str) -> bool:
    """Whether AlgaPSA takes two names for one: equal once trimmed, case counts."""
    return a.strip() == b.strip()


def read_alga_error(response: requests.Response) -> RemoteProblem:
    """Read an AlgaPSA error body in either of its shapes, or an HTML page."""
    try:
        body = response.json()
    except ValueError:
        return _unreadable(response)
    error = body.get("error") if isinstance(body, dict) else None

    if isinstance(error, dict):
        code = error.get("code")
        details = error.get("details")
        message = _describe(str(error.get("message") or "no message"), details)
        problem = RemoteProblem(message, None if code is None else str(code), details)
    elif isinstance(error, str):
        problem = RemoteProblem(error)
    else:
        problem = RemoteProblem(
            f"answered with an unknown error body: {body_text(response)}"
        )

    hint = STATUS_HINTS.get(response.status_code)
    if hint is None:
        return problem
    return RemoteProblem(f"{problem.message}; {hint}", problem.code, problem.details)


def _describe(message: str, details: Any) -> str:
    """The message, with the failing fields a validation error lists."""
    if isinstance(details, str) and details:
        return f"{message}: {details}"
    if not isinstance(details, list):
        return message
    fields = [_field_problem(item) for item in details if isinstance(item, dict)]
    return "; ".join(fields) if fields else message


def _field_problem(item: Mapping[str, Any]) -> str:
    path = ".".join(str(part) for part in item.get("path") or [])
    text = str(item.get("message") or "invalid")
    return f"{path}: {text}" if path else text


def _unreadable(response: requests.Response) -> RemoteProblem:
    if response.status_code == 404:
        return RemoteProblem(
            f"no such route {response.request.path_url}; {ROUTE_HINT}", NO_SUCH_ROUTE
        )
    excerpt = body_text(response) or "an empty body"
    return RemoteProblem(f"answered with a body that is not JSON: {excerpt}")


def iso_utc(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC with milliseconds and ``Z``; naive is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class AlgaClient:
    """Reads and writes AlgaPSA clients and their locations."""

    def __init__(
        self,
        settings: Settings,
        *,
        counter: CallCounter,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = RemoteSession(
            SERVICE,
            settings.alga_base,
            read_error=read_alga_error,
            counter=counter,
            timeout=(settings.connect_timeout, settings.read_timeout),
            max_attempts=settings.max_attempts,
            pacer=Pacer(seconds_per_token=SECONDS_PER_TOKEN, sleep=sleep),
            permanent_codes=PERMANENT_CODES,
            session=session,
            sleep=sleep,
        )
        self._headers = {"x-api-key": settings.alga_api_token.get_secret_value()}
        if settings.alga_tenant_header:
            self._headers["x-tenant-id"] = settings.alga_tenant_header
        self._endpoint = settings.alga_clients_endpoint.rstrip("/")
        self._search_endpoint = settings.alga_search_endpoint.rstrip("/")
        # Current name -> name on the wire, for servers older than v0.12.
        self._wire = {
            ID_FIELD: settings.alga_id_field,
            NAME_FIELD: settings.alga_name_field,
        }
        self._names = {wire: ours for ours, wire in self._wire.items()}

    def list_clients(
        self, *, updated_from: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Every client, inactive ones included, or those changed since a moment."""
        params = {} if updated_from is None else {"updated_from": iso_utc(updated_from)}
        pages = self._pages(self._endpoint, params)
        return [self._from_wire(client) for page in pages for client in page]

    def count_clients(self) -> int:
        """How many clients the API key can read, from a one-item page."""
        body = self._get(self._endpoint, self._endpoint, params={"limit": 1})
        pagination = body.get("pagination") or {}
        total = pagination.get("total")
        return total if isinstance(total, int) else len(_data_list(body))

    def get_client(self, client_id: str) -> dict[str, Any] | None:
        """One client, or None when AlgaPSA has no such client."""
        try:
            body = self._get(self._one(client_id), f"{self._endpoint}/{{id}}")
        except NotFound as exc:
            if exc.code == NO_SUCH_ROUTE:
                raise
            return None
        return self._from_wire(_data_object(body))

    def find_by_exact_name(self, name: str) -> dict[str, Any] | None:
        """The client named ``name`` as AlgaPSA compares names, or None."""
        wanted = name.strip()
        params = {self._wire[NAME_FIELD]: wanted}
        for page in self._pages(self._search_endpoint, params):
            for raw in page:
                client = self._from_wire(raw)
                if same_name(str(client.get(NAME_FIELD, "")), wanted):
                    return client
        return None

    def create_client(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a client and return it; a taken name raises ``Conflict``.

        A create retried after a lost answer may meet its own first attempt
        and so raise ``Conflict``: look the name up before giving up.
        """
        response = self._send("POST", self._endpoint, self._endpoint, body)
        return self._from_wire(_data_object(response))

    def update_client(self, client_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change the fields named in ``body`` and return the whole client."""
        route = f"{self._endpoint}/{{id}}"
        response = self._send("PUT", self._one(client_id), route, body)
        return self._from_wire(_data_object(response))

    def list_locations(self, client_id: str) -> list[dict[str, Any]]:
        """The locations of one client (the server does not page them)."""
        path = f"{self._one(client_id)}/locations"
        body = self._get(path, f"{self._endpoint}/{{id}}/locations")
        return [self._from_wire(item) for item in _data_list(body)]

    def create_location(
        self, client_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Add a location (address, phone, email) to a client and return it."""
        path = f"{self._one(client_id)}/locations"
        route = f"{self._endpoint}/{{id}}/locations"
        return self._from_wire(_data_object(self._send("POST", path, route, body)))

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        """The ``data`` of each page of a listing, from page 1 to the last."""
        page = 1
        while True:
            query = {**params, "page": page, "limit": PAGE_SIZE}
            body = self._get(path, path, params=query)
            items = _data_list(body)
            yield items
            if not items or not _has_next(body.get("pagination"), page):
                return
            page += 1

    def _get(self, path: str, route: str, **kwargs: Any) -> dict[str, Any]:
        response = self._api.request(
            "GET", path, route=route, headers=self._headers, **kwargs
        )
        return _object(self._api.json_of(response))

    def _send(
        self, method: str, path: str, route: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        response = self._api.request(
            method, path, route=route, headers=self._headers, json=self._to_wire(body)
        )
        return _object(self._api.json_of(response))

    def _one(self, client_id: str) -> str:
        return f"{self._endpoint}/{quote(client_id, safe='')}"

    def _to_wire(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {self._wire.get(key, key): value for key, value in body.items()}

    def _from_wire(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {self._names.get(key, key): value for key, value in item.items()}


def _has_next(pagination: Any, page: int) -> bool:
    """Whether a page follows ``page``: ``hasNext``, else ``totalPages``."""
    if not isinstance(pagination, dict):
        return False
    has_next = pagination.get("hasNext")
    if isinstance(has_next, bool):
        return has_next
    total_pages = pagination.get("totalPages")
    return isinstance(total_pages, int) and page < total_pages


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RemoteRejected(
            f"answered with something other than an object; {ROUTE_HINT}",
            service=SERVICE,
        )
    return body


def _data_object(body: Mapping[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict):
        raise RemoteRejected(
            f"answered without a data object; {ROUTE_HINT}", service=SERVICE
        )
    return data


def _data_list(body: Mapping[str, Any]) -> list[Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise RemoteRejected(
            f"answered without a data list; {ROUTE_HINT}", service=SERVICE
        )
    return data
