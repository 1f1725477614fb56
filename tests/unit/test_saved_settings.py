"""Settings saved by the setup: encryption at rest, merging, sources, reset."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from sync.__main__ import cli
from sync.errors import ConfigError
from sync.saved_settings import (
    KEY_FILE,
    SETTINGS_FILE,
    Admin,
    SettingsStore,
    hash_password,
    read_or_create_key,
    reset_setup,
)
from sync.settings import (
    SettingsWatcher,
    load_settings,
    merged_environment,
    settings_sources,
)

TENANT = "6f0e2c55-27a4-4b5e-9a47-3d4f1c2b9e10"
SAVED = {
    "ACRONIS_BASE_URL": "https://eu2-cloud.acronis.com/api/2",
    "ACRONIS_CLIENT_ID": "client-id",
    "ACRONIS_CLIENT_SECRET": "acronis-plain-secret",
    "ACRONIS_TENANT_ID": TENANT,
    "ALGA_BASE_URL": "https://psa.example.com/api/v1",
    "ALGA_API_TOKEN": "alga-plain-key",
    "SYNC_CRON": "0 * * * *",
    "DRY_RUN": "true",
}


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {"DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def store(environ: dict[str, str]) -> SettingsStore:
    saved = SettingsStore.from_environ(environ)
    saved.save(SAVED, admin=Admin("boss", hash_password("a long password")))
    return saved


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_encrypted_and_files_private(store: SettingsStore) -> None:
    text = store.path.read_text()
    document = json.loads(text)

    assert "acronis-plain-secret" not in text
    assert "alga-plain-key" not in text
    assert set(document["secrets"]) == {"ACRONIS_CLIENT_SECRET", "ALGA_API_TOKEN"}
    assert document["values"]["ACRONIS_CLIENT_ID"] == "client-id"
    assert mode(store.path) == 0o600
    assert mode(store.data_dir / KEY_FILE) == 0o600


def test_loads_what_was_saved(store: SettingsStore) -> None:
    loaded = store.load()

    assert loaded.values == SAVED
    assert loaded.admin is not None
    assert loaded.admin.username == "boss"


def test_admin_password_is_only_an_argon2_hash(store: SettingsStore) -> None:
    text = store.path.read_text()
    admin = store.load().admin
    assert admin is not None

    assert "a long password" not in text
    assert admin.password_hash.startswith("$argon2id$")
    assert admin.verify("boss", "a long password")
    assert not admin.verify("boss", "a wrong password")
    assert not admin.verify("someone", "a long password")


def test_settings_key_from_the_environment(environ: dict[str, str]) -> None:
    key = Fernet.generate_key().decode()
    given = SettingsStore.from_environ({**environ, "SETTINGS_KEY": key})
    given.save(SAVED)

    assert not (given.data_dir / KEY_FILE).exists()
    assert given.load().values == SAVED
    other = SettingsStore.from_environ(
        {**environ, "SETTINGS_KEY": Fernet.generate_key().decode()}
    )
    with pytest.raises(ConfigError, match="another key"):
        other.load()


def test_a_malformed_settings_key_is_explained(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="not a Fernet key"):
        SettingsStore.from_environ({**environ, "SETTINGS_KEY": "short"}).save(SAVED)


def test_the_key_is_made_once(tmp_path: Path) -> None:
    first = read_or_create_key(tmp_path / "k", b"first")
    second = read_or_create_key(tmp_path / "k", b"second")

    assert first == second == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_nothing_saved_loads_empty(environ: dict[str, str]) -> None:
    assert SettingsStore.from_environ(environ).load().values == {}
    assert not SettingsStore.from_environ(environ).configured()


def test_load_settings_uses_the_saved_values(
    store: SettingsStore, environ: dict[str, str]
) -> None:
    settings = load_settings(environ)

    assert settings.acronis_client_secret.get_secret_value() == "acronis-plain-secret"
    assert settings.dry_run is True


def test_environment_wins_over_saved_but_blanks_do_not(
    store: SettingsStore, environ: dict[str, str]
) -> None:
    given = {**environ, "ACRONIS_CLIENT_ID": "from-env", "ALGA_BASE_URL": ""}

    merged = merged_environment(given)

    assert merged["ACRONIS_CLIENT_ID"] == "from-env"
    assert merged["ALGA_BASE_URL"] == SAVED["ALGA_BASE_URL"]
    assert load_settings(given).acronis_client_id == "from-env"


def test_sources_name_each_origin(
    store: SettingsStore, environ: dict[str, str]
) -> None:
    sources = settings_sources({**environ, "ACRONIS_CLIENT_ID": "from-env"})

    assert sources["ACRONIS_CLIENT_ID"] == "environment"
    assert sources["ACRONIS_CLIENT_SECRET"] == "saved"
    assert sources["ADMIN_PASSWORD"] == "saved"
    assert sources["SYNC_QUEUE"] == "default"


def test_watcher_reads_a_changed_file_again(
    store: SettingsStore, environ: dict[str, str]
) -> None:
    watcher = SettingsWatcher(environ)
    first = watcher.current()
    assert watcher.current() is first

    store.save({**SAVED, "ACRONIS_CLIENT_ID": "changed", "SYNC_CRON": "*/5 * * * *"})

    assert watcher.changed()
    assert watcher.current().acronis_client_id == "changed"
    assert not watcher.changed()


def test_reset_reopens_the_setup(store: SettingsStore) -> None:
    assert reset_setup(store.data_dir)
    assert not (store.data_dir / SETTINGS_FILE).exists()
    assert (store.data_dir / KEY_FILE).exists()
    assert not reset_setup(store.data_dir)


def test_an_unreadable_file_is_explained(environ: dict[str, str]) -> None:
    store = SettingsStore.from_environ(environ)
    store.data_dir.mkdir(parents=True)
    store.path.write_text("{not json")

    with pytest.raises(ConfigError, match="cannot be read"):
        store.load()


def test_blank_variables_are_not_a_source(environ: dict[str, str]) -> None:
    sources = settings_sources({**environ, "ACRONIS_CLIENT_ID": "", "SYNC_CRON": ""})

    assert sources["ACRONIS_CLIENT_ID"] == "default"
    assert sources["SYNC_CRON"] == "environment"


def test_admin_names_outside_ascii(environ: dict[str, str]) -> None:
    admin = Admin("Jürgen", hash_password("a long password"))

    assert admin.verify("Jürgen", "a long password")
    assert not admin.verify("Jurgen", "a long password")


def test_reset_setup_command(store: SettingsStore, environ: dict[str, str]) -> None:
    runner = CliRunner()
    command = ["--env-file", os.devnull, "reset-setup"]

    first = runner.invoke(cli, command, env=environ)
    again = runner.invoke(cli, command, env=environ)

    assert first.exit_code == 0, first.output
    assert "open again" in first.output
    assert not store.configured()
    assert "Nothing to reset" in again.output
