"""The setup token, which keeps strangers who reach the port out of the wizard.

Until the setup is saved, anyone who reaches the port could otherwise pick
the admin login or make the server fetch any address through "Test
connection". The token is ``SETUP_TOKEN``, else ``ADMIN_PASSWORD`` (the
installer writes one into ``.env``), else a random one that this module
keeps in ``DATA_DIR/setup-token`` (mode 600) across restarts and deletes
once the setup is saved. A session that has shown it keeps an HMAC of it,
so a new token after a reset is asked for again.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping
from pathlib import Path

from flask import current_app, session

from sync.saved_settings import read_or_create_key

log = logging.getLogger(__name__)

TOKEN_FILE = "setup-token"
TOKEN_BYTES = 32
# Where the token may come from, in order.
TOKEN_VARIABLES = ("SETUP_TOKEN", "ADMIN_PASSWORD")
SESSION_PASS = "setup_pass"


def token_variable(environ: Mapping[str, str]) -> str | None:
    """The variable that gives the token, or None when DATA_DIR keeps one."""
    return next((name for name in TOKEN_VARIABLES if environ.get(name, "")), None)


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def _announce(token: str, path: Path) -> None:
    # The one accepted secret in a log: a one-time token the admin cannot
    # learn otherwise, and useless once the setup is saved.
    log.warning("Setup is open: visit /setup?token=%s (also in %s)", token, path)


def announce_at_start(environ: Mapping[str, str], data_dir: Path) -> None:
    """Say once where the setup token is, making one when none is given."""
    named = token_variable(environ)
    if named is not None:
        log.warning("Setup is open: visit /setup and enter the value of %s", named)
        return
    existed = token_path(data_dir).exists()
    token = setup_token(environ, data_dir)
    if existed and token is not None:
        _announce(token, token_path(data_dir))


def setup_token(environ: Mapping[str, str], data_dir: Path) -> str | None:
    """The token that opens the wizard; None when DATA_DIR cannot keep one."""
    named = token_variable(environ)
    if named is not None:
        return environ[named]
    path = token_path(data_dir)
    made = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        token = read_or_create_key(path, made.encode()).decode()
    except OSError as exc:
        log.error("cannot keep the setup token in %s: %s", path, exc)
        return None
    if token == made:
        _announce(token, path)
    return token


def _mark(token: str) -> str:
    key = str(current_app.secret_key).encode()
    return hmac.new(key, token.encode(), "sha256").hexdigest()


def token_ok(given: str, token: str | None) -> bool:
    """Whether ``given`` is the token, compared in constant time."""
    return token is not None and hmac.compare_digest(given.encode(), token.encode())


def remember(token: str) -> None:
    """Let this session into the wizard while ``token`` stays the token."""
    session[SESSION_PASS] = _mark(token)


def token_shown(token: str | None) -> bool:
    """Whether this session has shown ``token``."""
    mark = session.get(SESSION_PASS)
    if not isinstance(mark, str) or token is None:
        return False
    return hmac.compare_digest(mark.encode(), _mark(token).encode())


def forget_token(data_dir: Path) -> None:
    """Drop the used token: from this session, and from DATA_DIR."""
    session.pop(SESSION_PASS, None)
    try:
        token_path(data_dir).unlink(missing_ok=True)
    except OSError as exc:
        log.error("cannot remove the used setup token in %s: %s", data_dir, exc)
