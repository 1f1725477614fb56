"""Who may call the receiver: signed webhooks, a bearer token, an admin login.

Three schemes, each checked over the raw request body before anything parses
it:

- Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``), verified by the ``standardwebhooks`` package against
  every configured ``whsec_`` secret, so a secret can be rotated without
  downtime;
- AlgaPSA's ``X-Alga-Signature: t=<unix>,v1=<hex>``, an HMAC-SHA256 of
  ``"<t>.<body>"``;
- ``Authorization: Bearer <SYNC_API_TOKEN>`` or an admin's HTTP Basic login.

Every comparison of a secret is constant-time, and no error message repeats
what the caller sent.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.datastructures import Authorization

from sync.errors import ConfigError
from web.errors import ApiError

# How far a signed timestamp may be from our clock, either way.
TOLERANCE_SECONDS = 300
# Webhook ids longer than this are refused rather than stored.
MAX_MESSAGE_ID = 200

STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
ALGA_HEADER = "X-Alga-Signature"


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


class StandardWebhooks:
    """Verifies Standard Webhooks signatures against one or more secrets."""

    def __init__(self, secrets: Sequence[str]) -> None:
        try:
            self._hooks = [Webhook(secret) for secret in secrets]
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(
                "WEBHOOK_SECRET holds a secret that is not base64: use the "
                "whsec_... value exactly as the sender shows it"
            ) from exc

    @property
    def configured(self) -> bool:
        return bool(self._hooks)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str:
        """Return the webhook id when any secret signed ``body``; else raise 401.

        ``headers`` are keyed by lower-case names.
        """
        found = {name: headers.get(name, "") for name in STANDARD_HEADERS}
        if not all(found.values()):
            raise unauthorized(
                "missing_signature",
                "send webhook-id, webhook-timestamp and webhook-signature, "
                "or an Authorization: Bearer token",
            )
        message_id = found["webhook-id"]
        if len(message_id) > MAX_MESSAGE_ID:
            raise ApiError(400, "bad_webhook_id", "webhook-id is too long")
        if not self._hooks:
            raise unauthorized(
                "not_configured", "no WEBHOOK_SECRET is set on this service"
            )
        reason = _timestamp_problem(found["webhook-timestamp"])
        if reason:
            raise unauthorized("stale_timestamp", reason)
        for hook in self._hooks:
            if _standard_signature_holds(hook, body, found):
                return message_id
        raise unauthorized(
            "bad_signature", "no configured WEBHOOK_SECRET signed this request"
        )


def _standard_signature_holds(
    hook: Webhook, body: bytes, headers: Mapping[str, str]
) -> bool:
    try:
        hook.verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error):
        # A malformed signature list or a body that is not UTF-8 is a
        # failed signature, not a server error.
        return False
    return True


def _timestamp_problem(raw: str, now: float | None = None) -> str:
    """Why the signed timestamp ``raw`` is refused, or "" when it is fine."""
    try:
        stamp = int(raw)
    except ValueError:
        return "the signature timestamp is not a whole number of Unix seconds"
    drift = stamp - (time.time() if now is None else now)
    if drift < -TOLERANCE_SECONDS:
        return "the signature timestamp is more than 5 minutes old"
    if drift > TOLERANCE_SECONDS:
        return "the signature timestamp is more than 5 minutes in the future"
    return ""


def verify_alga(secret: str, body: bytes, header: str) -> str:
    """Check an ``X-Alga-Signature`` header; return its signature, else raise 401.

    The returned signature names this delivery, so a replay can be refused.
    """
    if not secret:
        raise unauthorized("not_configured", "no ALGA_WEBHOOK_SECRET is set")
    parts = [part.strip().partition("=") for part in header.split(",")]
    stamp = next((value for key, _, value in parts if key == "t"), "")
    offered = [value for key, _, value in parts if key == "v1" and value]
    if not stamp or not offered:
        raise unauthorized(
            "missing_signature", f"send {ALGA_HEADER}: t=<unix seconds>,v1=<hex>"
        )
    reason = _timestamp_problem(stamp)
    if reason:
        raise unauthorized("stale_timestamp", reason)
    signed = stamp.encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    for candidate in offered:
        if hmac.compare_digest(expected, candidate.lower()):
            return candidate.lower()
    raise unauthorized("bad_signature", "ALGA_WEBHOOK_SECRET did not sign this request")


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def secret_matches(offered: str, expected: str) -> bool:
    """Constant-time equality; an unset expected secret never matches."""
    if not expected:
        return False
    return hmac.compare_digest(offered.encode(), expected.encode())


def basic_login_matches(
    authorization: Authorization | None, username: str, password: str
) -> bool:
    """True when an HTTP Basic login names the admin with the right password."""
    if authorization is None or authorization.type != "basic":
        return False
    name_ok = secret_matches(authorization.username or "", username)
    password_ok = secret_matches(authorization.password or "", password)
    return name_ok and password_ok
