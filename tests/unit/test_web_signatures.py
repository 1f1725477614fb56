"""The receiver's signature schemes, checked without a server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from werkzeug.datastructures import Authorization

from sync.errors import ConfigError
from web.errors import ApiError
from web.signatures import (
    StandardWebhooks,
    basic_login_matches,
    bearer_token,
    secret_matches,
    verify_alga,
)

OLD = "whsec_" + base64.b64encode(b"old secret, 24 bytes....").decode()
NEW = "whsec_" + base64.b64encode(b"new secret, 24 bytes....").decode()
BODY = b'{"tenant_id": "0b1c2d3e-0000-4000-8000-000000000001"}'


def signed_headers(
    secret: str, body: bytes, *, at: float | None = None
) -> dict[str, str]:
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    signature = Webhook(secret).sign("msg_1", moment, body.decode())
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def refusal(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_a_valid_signature_returns_the_webhook_id() -> None:
    verifier = StandardWebhooks([NEW])

    assert verifier.verify(BODY, signed_headers(NEW, BODY)) == "msg_1"


def test_a_wrong_secret_is_refused() -> None:
    headers = signed_headers(OLD, BODY)

    error = refusal(lambda: StandardWebhooks([NEW]).verify(BODY, headers))

    assert (error.status, error.code) == (401, "bad_signature")


def test_the_second_secret_is_accepted_while_rotating() -> None:
    verifier = StandardWebhooks([NEW, OLD])

    assert verifier.verify(BODY, signed_headers(OLD, BODY)) == "msg_1"


def test_a_changed_body_is_refused() -> None:
    headers = signed_headers(NEW, BODY)

    error = refusal(lambda: StandardWebhooks([NEW]).verify(BODY + b" ", headers))

    assert error.code == "bad_signature"


@pytest.mark.parametrize("shift", [-301, 301], ids=["stale", "future"])
def test_a_timestamp_beyond_five_minutes_is_refused(shift: int) -> None:
    headers = signed_headers(NEW, BODY, at=time.time() + shift)

    error = refusal(lambda: StandardWebhooks([NEW]).verify(BODY, headers))

    assert (error.status, error.code) == (401, "stale_timestamp")


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-signature"])
def test_missing_headers_are_refused(missing: str) -> None:
    headers = signed_headers(NEW, BODY)
    del headers[missing]

    error = refusal(lambda: StandardWebhooks([NEW]).verify(BODY, headers))

    assert (error.status, error.code) == (401, "missing_signature")


def test_a_malformed_signature_list_is_a_bad_signature() -> None:
    headers = {**signed_headers(NEW, BODY), "webhook-signature": "v1 no-comma"}

    error = refusal(lambda: StandardWebhooks([NEW]).verify(BODY, headers))

    assert error.code == "bad_signature"


def test_a_secret_that_is_not_base64_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        StandardWebhooks(["whsec_not*base64"])


def alga_header(secret: str, body: bytes, stamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return f"t={stamp},v1={digest.hexdigest()}"


def test_alga_signature_of_timestamp_and_body() -> None:
    header = alga_header("alga-secret", BODY, int(time.time()))

    assert verify_alga("alga-secret", BODY, header) == header.split("v1=")[1]


@pytest.mark.parametrize(
    ("secret", "shift", "code"),
    [
        ("other-secret", 0, "bad_signature"),
        ("alga-secret", -400, "stale_timestamp"),
        ("alga-secret", 400, "stale_timestamp"),
    ],
)
def test_alga_signature_refusals(secret: str, shift: int, code: str) -> None:
    header = alga_header(secret, BODY, int(time.time()) + shift)

    error = refusal(lambda: verify_alga("alga-secret", BODY, header))

    assert (error.status, error.code) == (401, code)


@pytest.mark.parametrize("header", ["", "t=1", "v1=abc", "garbage"])
def test_alga_header_without_both_parts_is_missing(header: str) -> None:
    error = refusal(lambda: verify_alga("alga-secret", BODY, header))

    assert error.code == "missing_signature"


def test_bearer_token_parsing_and_comparison() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert secret_matches("abc", "abc")
    assert not secret_matches("abd", "abc")
    assert not secret_matches("", "")


def test_basic_login_needs_name_and_password() -> None:
    good = Authorization("basic", {"username": "admin", "password": "pw"})
    wrong = Authorization("basic", {"username": "admin", "password": "no"})

    assert basic_login_matches(good, "admin", "pw")
    assert not basic_login_matches(wrong, "admin", "pw")
    assert not basic_login_matches(None, "admin", "pw")
