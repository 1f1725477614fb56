"""One exception tree for the whole engine.

::

    SyncError
    ├── RetryableError          try again later: the remote may recover
    │   ├── RemoteUnavailable   timeouts, connection errors, 5xx
    │   └── RateLimited         429, carries the wait the remote asked for
    └── PermanentError          retrying cannot help; a person must act
        ├── ConfigError         a setting is missing or wrong
        ├── MappingError        mapping.yaml is invalid
        ├── LinkConflict        a client is claimed by another tenant
        └── RemoteRejected      a 4xx other than 429
            ├── AuthError       401 and 403
            ├── NotFound        404
            └── Conflict        409

Every error carries the tenant id (when one is concerned), the remote service
and the remote status, so a summary line can say who failed and why.
"""

from __future__ import annotations

from typing import Any


class SyncError(Exception):
    """Base of every error the engine raises on purpose."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        tenant_id: str | None = None,
        service: str | None = None,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.tenant_id = tenant_id
        self.service = service
        self.status = status
        self.code = code
        self.details = details

    def for_tenant(self, tenant_id: str) -> SyncError:
        """Return this error with ``tenant_id`` set, for reporting."""
        self.tenant_id = tenant_id
        return self

    def __str__(self) -> str:
        where = (
            f"{self.service} {self.status}: " if self.service and self.status else ""
        )
        return f"{where}{self.message}"


class RetryableError(SyncError):
    """The remote may recover: the operation can be tried again."""

    retryable = True


class RemoteUnavailable(RetryableError):
    """A timeout, a connection failure or a 5xx answer."""


class RateLimited(RetryableError):
    """A 429 answer; ``retry_after`` is the wait in seconds the remote asked for."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class PermanentError(SyncError):
    """Retrying cannot help; the message says what a person should do."""


class ConfigError(PermanentError):
    """A setting is missing or invalid."""


class MappingError(PermanentError):
    """``mapping.yaml`` cannot be loaded, or a tenant cannot be mapped."""


class LinkConflict(PermanentError):
    """A client is already linked to another tenant, or two tenants want one client."""


class RemoteRejected(PermanentError):
    """The remote refused the request with a 4xx other than 429."""


class AuthError(RemoteRejected):
    """The credentials were refused (401) or lack a permission (403)."""


class NotFound(RemoteRejected):
    """The remote has no such resource (404)."""


class Conflict(RemoteRejected):
    """The remote reports a uniqueness or version conflict (409)."""
