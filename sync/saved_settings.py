"""Settings saved by the setup wizard in ``DATA_DIR``, secrets encrypted at rest.

``DATA_DIR/settings.json`` (mode 600) holds::

    {"version": 1, "saved_at": "...",
     "values": {"ACRONIS_BASE_URL": "...", ...},        plain settings
     "secrets": {"ACRONIS_CLIENT_SECRET": "gAAAA...", ...},  Fernet tokens
     "admin": {"username": "...", "password_hash": "$argon2id$..."}}

The Fernet key comes from ``SETTINGS_KEY`` or, without it, from
``DATA_DIR/secret.key``, generated once. The admin password is kept only as
an argon2 hash. This module knows nothing of :class:`sync.settings.Settings`:
``sync.settings.load_settings`` merges these values under the environment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

from sync.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = "data"
SETTINGS_FILE = "settings.json"
KEY_FILE = "secret.key"
SESSION_KEY_FILE = "session.key"
FORMAT_VERSION = 1
PRIVATE = 0o600

# Settings kept encrypted; every other saved value is stored as it is.
SECRET_NAMES = frozenset(
    {
        "ACRONIS_CLIENT_SECRET",
        "ALGA_API_TOKEN",
        "WEBHOOK_SECRET",
        "SYNC_API_TOKEN",
        "ALGA_WEBHOOK_SECRET",
    }
)

_hasher = PasswordHasher()


def data_dir_of(environ: Mapping[str, str]) -> Path:
    """Where saved settings live: ``DATA_DIR``, or ``./data`` when it is unset."""
    return Path(environ.get("DATA_DIR") or DEFAULT_DATA_DIR)


def _private_copy(path: Path, data: bytes) -> Path:
    """A mode-600 file holding ``data`` in full, beside ``path``, to move into place."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, PRIVATE)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step; the file is mode 600 throughout."""
    temporary = _private_copy(path, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_or_create_key(path: Path, make: bytes) -> bytes:
    """The key in ``path``; when there is none, ``make`` is stored there first.

    Creation is atomic: the key is written in full to a private temporary file
    and hard-linked into place, so two processes starting together agree on
    one key and none ever reads half a key.
    """
    if path.exists():
        return path.read_bytes().strip()
    temporary = _private_copy(path, make)
    try:
        # When another process won the race, its key is the one to use.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_bytes().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, PRIVATE)
        with os.fdopen(handle, "wb") as stream:
            stream.write(make)
        # When another process won the race, its key is the one to use.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path.read_bytes().strip()


@dataclass(frozen=True)
class Admin:
    """The admin login chosen in the wizard: a name and an argon2 hash."""

    username: str
    password_hash: str

    def verify(self, username: str, password: str) -> bool:
        """Whether ``username``/``password`` is this login (argon2, no timing leak)."""
        matches: bool
        try:
            matches = _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            matches = False
        same = secrets.compare_digest(username.encode(), self.username.encode())
        return matches and same


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``, for :class:`Admin`."""
    return _hasher.hash(password)


@dataclass(frozen=True)
class SavedSettings:
    """What ``settings.json`` holds, secrets decrypted."""

    values: dict[str, str] = field(default_factory=dict)
    admin: Admin | None = None
    saved_at: str | None = None


class SettingsStore:
    """Reads and writes ``settings.json`` in one data directory."""

    def __init__(self, data_dir: Path, *, key: str | None = None) -> None:
        self.data_dir = data_dir
        self.path = data_dir / SETTINGS_FILE
        self._given_key = key

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SettingsStore:
        """The store of ``DATA_DIR``, with ``SETTINGS_KEY`` when it is set."""
        return cls(data_dir_of(environ), key=environ.get("SETTINGS_KEY") or None)

    def configured(self) -> bool:
        """Whether the wizard has saved settings here."""
        return self.path.is_file()

    def stamp(self) -> tuple[int, int] | None:
        """Changes whenever the file does: (mtime in ns, size), None when absent."""
        try:
            found = self.path.stat()
        except FileNotFoundError:
            return None
        return (found.st_mtime_ns, found.st_size)

    def _fernet(self) -> Fernet:
        key = self._given_key
        if key is None:
            made = Fernet.generate_key()
            key = read_or_create_key(self.data_dir / KEY_FILE, made).decode()
        try:
            return Fernet(key)
        except ValueError:
            raise ConfigError(
                "SETTINGS_KEY is not a Fernet key (32 bytes, url-safe base64): "
                "make one with `python -c 'from cryptography.fernet import "
                "Fernet; print(Fernet.generate_key().decode())'`"
            ) from None

    def load(self) -> SavedSettings:
        """The saved settings; empty when the wizard has not run.

        Raises ConfigError when the file cannot be read or decrypted.
        """
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return SavedSettings()
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{self.path} cannot be read ({exc}): fix or remove it, then run "
                "the setup at /setup again"
            ) from None
        values = {str(k): str(v) for k, v in document.get("values", {}).items()}
        values.update(self._decrypt(document.get("secrets", {})))
        return SavedSettings(values, _admin_of(document), document.get("saved_at"))

    def _decrypt(self, sealed: Mapping[str, Any]) -> dict[str, str]:
        fernet = self._fernet()
        try:
            return {
                name: fernet.decrypt(str(token)).decode()
                for name, token in sealed.items()
            }
        except InvalidToken:
            raise ConfigError(
                f"the secrets in {self.path} were saved with another key: restore "
                f"{self.data_dir / KEY_FILE} (or SETTINGS_KEY), or reset the setup "
                "with `python -m sync reset-setup` and run /setup again"
            ) from None

    def save(
        self,
        values: Mapping[str, str],
        *,
        admin: Admin | None = None,
    ) -> None:
        """Write ``values`` (secrets encrypted) and the admin login, replacing both."""
        fernet = self._fernet()
        document: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "values": {k: v for k, v in values.items() if k not in SECRET_NAMES},
            "secrets": {
                k: fernet.encrypt(v.encode()).decode()
                for k, v in values.items()
                if k in SECRET_NAMES
            },
        }
        if admin is not None:
            document["admin"] = {
                "username": admin.username,
                "password_hash": admin.password_hash,
            }
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        _write_private(self.path, text.encode())
        log.info("settings saved to %s", self.path)

    def session_key(self) -> str:
        """The web app's secret for sessions and CSRF tokens, made once."""
        made = secrets.token_hex(32).encode()
        return read_or_create_key(self.data_dir / SESSION_KEY_FILE, made).decode()


def _admin_of(document: Mapping[str, Any]) -> Admin | None:
    admin = document.get("admin")
    if not isinstance(admin, dict):
        return None
    username, password_hash = admin.get("username"), admin.get("password_hash")
    if not isinstance(username, str) or not isinstance(password_hash, str):
        return None
    return Admin(username, password_hash)


def reset_setup(data_dir: Path) -> bool:
    """Forget the wizard's settings so ``/setup`` opens again; False if none.

    The keys stay, so sessions survive; environment variables are untouched.
    """
    path = data_dir / SETTINGS_FILE
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    log.warning("saved settings removed from %s: the setup at /setup is open", path)
    return True
