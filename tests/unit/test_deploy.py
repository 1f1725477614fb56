"""The deployment path: the image workflow and scripts/install.sh.

The workflow is checked with actionlint and read for its triggers, tags and
permissions. The installer runs for real in a temporary folder, against a
fake ``docker`` that logs its arguments, so no Docker engine is needed.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values
from jsonschema import Draft201909Validator

REPO = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"
VENV_BIN = Path(sys.executable).parent
WORKFLOW = REPO / ".github" / "workflows" / "image.yml"
INSTALL = REPO / "scripts" / "install.sh"
IMAGE = "ghcr.io/acme/alga-acronis-sync"
PORT = "8080"
VOLUME = "alga-acronis-sync-data"
APP_SERVICES = ("web", "worker", "scheduler")

# Answers like Docker's where the installer reads them; logs every call.
FAKE_DOCKER = """#!/usr/bin/env bash
echo "$*" >>"$DOCKER_LOG"
case "$*" in
    "compose version") echo "Docker Compose version v2.29.1" ;;
    "volume inspect "*) [ -e "$DOCKER_STATE/volume" ] ;;
    "volume create "*) touch "$DOCKER_STATE/volume" && echo "${*: -1}" ;;
    "image inspect "*) echo "10001:10001" ;;
esac
"""


def tool(name: str) -> str:
    path = VENV_BIN / name
    assert path.is_file(), f"{name} is missing: pip install -r requirements-dev.txt"
    return str(path)


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    # YAML 1.1 reads the key "on" as the boolean true.
    loaded["on"] = loaded.pop(True)
    return loaded


def step(job: dict[str, Any], action: str) -> dict[str, Any]:
    """The one step of ``job`` that uses ``action`` (any version)."""
    found = [s for s in job["steps"] if s.get("uses", "").startswith(action + "@")]
    assert len(found) == 1, f"{action} should be used once"
    used: dict[str, Any] = found[0]
    return used


@pytest.fixture
def fake_docker(tmp_path: Path) -> Path:
    """A folder holding a logging ``docker``; its log is ``docker.log`` beside."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (tmp_path / "docker-state").mkdir()
    return bin_dir


def install(
    tmp_path: Path, *args: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path
        if path is not None
        else f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "DOCKER_LOG": str(tmp_path / "docker.log"),
        "DOCKER_STATE": str(tmp_path / "docker-state"),
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [BASH, str(INSTALL), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def standard_args(target: Path, repo: str = str(REPO)) -> list[str]:
    return ["--repo", repo, "--image-repo", IMAGE, "--port", PORT, "--dir", str(target)]


def docker_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "docker.log"
    return log.read_text().splitlines() if log.exists() else []


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Content, mode and modification time of every file under ``folder``."""
    return {
        str(path.relative_to(folder)): (
            path.read_bytes(),
            stat.S_IMODE(path.stat().st_mode),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_workflow_passes_actionlint() -> None:
    # With shellcheck on PATH, actionlint also checks every run: script.
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    result = subprocess.run(
        [tool("actionlint"), str(WORKFLOW)], capture_output=True, text=True, env=env
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_runs_on_main_and_version_tags(workflow: dict[Any, Any]) -> None:
    assert workflow["on"] == {"push": {"branches": ["main"], "tags": ["v*"]}}


def test_only_the_image_job_may_write_packages(workflow: dict[Any, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["image"]["permissions"] == {
        "contents": "read",
        "packages": "write",
    }
    assert "permissions" not in workflow["jobs"]["test"]


def test_tests_pass_before_anything_is_pushed(workflow: dict[Any, Any]) -> None:
    test_job = workflow["jobs"]["test"]

    assert workflow["jobs"]["image"]["needs"] == "test"
    assert {"run": "make test"} in test_job["steps"]
    redis = test_job["services"]["redis"]
    assert redis["image"].startswith("redis:")
    assert "6379:6379" in redis["ports"]


def test_image_is_tagged_latest_sha_and_version(workflow: dict[Any, Any]) -> None:
    meta = step(workflow["jobs"]["image"], "docker/metadata-action")["with"]
    tags = meta["tags"].splitlines()

    assert meta["images"] == "ghcr.io/${{ github.repository }}"
    assert meta["flavor"] == "latest=false"
    assert "type=raw,value=latest,enable=${{ github.ref == 'refs/heads/main' }}" in tags
    assert "type=sha,format=long" in tags
    assert "type=semver,pattern={{version}}" in tags
    assert len(tags) == 3


def test_image_is_pushed_to_ghcr_with_the_job_token(workflow: dict[Any, Any]) -> None:
    job = workflow["jobs"]["image"]
    login = step(job, "docker/login-action")["with"]
    build = step(job, "docker/build-push-action")["with"]

    assert login["registry"] == "ghcr.io"
    assert login["password"] == "${{ secrets.GITHUB_TOKEN }}"
    assert build["push"] is True
    assert build["tags"] == "${{ steps.meta.outputs.tags }}"
    assert (REPO / build["context"] / "Dockerfile").is_file()


@pytest.mark.parametrize("script", sorted(REPO.glob("scripts/*.sh")), ids=str)
def test_scripts_pass_shellcheck(script: Path) -> None:
    result = subprocess.run(
        [tool("shellcheck"), "--external-sources", str(script)],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout


def test_dry_run_plans_everything_and_touches_nothing(
    tmp_path: Path, fake_docker: Path
) -> None:
    target = tmp_path / "stack"
    before = snapshot(tmp_path)

    first = install(tmp_path, *standard_args(target), "--dry-run")
    second = install(tmp_path, *standard_args(target), "--dry-run")

    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    for action in (
        f"+ mkdir -p {target}",
        f"+ write {target}/docker-compose.yml (mode 644)",
        f"+ write {target}/.env (mode 600)",
        f"+ docker compose -f {target}/docker-compose.yml pull",
        f"+ docker volume create {VOLUME}",
        f"+ docker compose -f {target}/docker-compose.yml up -d",
    ):
        assert action in first.stdout
    assert f"    |   image: {IMAGE}:latest" in first.stdout
    assert f":{PORT}/setup" in first.stdout
    assert not target.exists()
    assert docker_calls(tmp_path) == []
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("dropped", ["--repo", "--image-repo", "--port"])
def test_a_missing_flag_is_a_usage_error(tmp_path: Path, dropped: str) -> None:
    args = standard_args(tmp_path / "stack")
    at = args.index(dropped)
    del args[at : at + 2]

    result = install(tmp_path, *args, "--dry-run")

    assert result.returncode == 2
    assert f"{dropped} is required" in result.stderr
    assert "usage: install.sh" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "0"), ("--port", "web"), ("--image-repo", "x:1")]
)
def test_a_bad_value_is_a_usage_error(tmp_path: Path, flag: str, value: str) -> None:
    args = standard_args(tmp_path / "stack")
    args[args.index(flag) + 1] = value

    assert install(tmp_path, *args, "--dry-run").returncode == 2


def test_the_stack_is_installed_once(tmp_path: Path, fake_docker: Path) -> None:
    target = tmp_path / "stack"

    first = install(tmp_path, *standard_args(target))

    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE((target / "docker-compose.yml").stat().st_mode) == 0o644
    assert stat.S_IMODE((target / ".env").stat().st_mode) == 0o600
    compose = f"compose -f {target}/docker-compose.yml"
    assert docker_calls(tmp_path) == [
        "compose version",
        f"{compose} pull",
        f"volume inspect {VOLUME}",
        f"volume create {VOLUME}",
        f"image inspect --format {{{{.Config.User}}}} {IMAGE}:latest",
        f"run --rm --user 0 --entrypoint chown -v {VOLUME}:/data "
        f"{IMAGE}:latest 10001:10001 /data",
        f"{compose} up -d",
    ]
    assert f":{PORT}/setup" in first.stdout
    assert f"ADMIN_PASSWORD in {target}/.env" in first.stdout


def test_a_second_run_keeps_every_file(tmp_path: Path, fake_docker: Path) -> None:
    target = tmp_path / "stack"
    assert install(tmp_path, *standard_args(target)).returncode == 0
    with (target / ".env").open("a") as env_file:
        env_file.write("ACRONIS_CLIENT_ID=typed-by-the-admin\n")
    before = snapshot(target)
    calls_before = len(docker_calls(tmp_path))

    second = install(tmp_path, *standard_args(target))

    assert second.returncode == 0, second.stderr
    assert snapshot(target) == before
    assert "an existing .env is never overwritten" in second.stdout
    assert "already up to date" in second.stdout
    calls = docker_calls(tmp_path)[calls_before:]
    assert not any(call.startswith(("volume create", "run ")) for call in calls)
    assert calls[-1] == f"compose -f {target}/docker-compose.yml up -d"


def test_env_gets_strong_fresh_secrets(tmp_path: Path, fake_docker: Path) -> None:
    target = tmp_path / "stack"
    assert install(tmp_path, *standard_args(target)).returncode == 0

    values = dotenv_values(target / ".env")

    token = values["SYNC_API_TOKEN"] or ""
    assert len(token) == 64 and int(token, 16) > 0
    webhook = values["WEBHOOK_SECRET"] or ""
    assert webhook.startswith("whsec_")
    assert len(base64.b64decode(webhook.removeprefix("whsec_"), validate=True)) == 32
    assert len(values["ADMIN_PASSWORD"] or "") == 24
    assert values["ADMIN_USERNAME"] == "admin"
    # Every other setting is .env.example's, so the file stays self-explaining.
    example = dotenv_values(REPO / ".env.example")
    assert values.keys() == example.keys()


def test_compose_runs_the_image_with_a_data_volume(
    tmp_path: Path, fake_docker: Path
) -> None:
    target = tmp_path / "stack"
    assert install(tmp_path, *standard_args(target)).returncode == 0

    compose = yaml.safe_load((target / "docker-compose.yml").read_text())

    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    Draft201909Validator(schema).validate(compose)
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert "build" not in service
        assert service["image"] == f"{IMAGE}:latest"
        assert service["environment"]["DATA_DIR"] == "/data"
        assert service["volumes"] == ["app-data:/data"]
    assert compose["services"]["nginx"]["ports"] == [f"{PORT}:8000"]
    assert "ports" not in compose["services"]["web"]
    config = (target / "deploy" / "nginx.conf").read_text()
    assert config == (REPO / "deploy" / "nginx.conf").read_text()
    assert compose["volumes"]["app-data"] == {"name": VOLUME, "external": True}
    assert "redis-data" in compose["volumes"]


def test_compose_is_the_repository_file_but_for_image_port_and_volume(
    tmp_path: Path, fake_docker: Path
) -> None:
    target = tmp_path / "stack"
    assert install(tmp_path, *standard_args(target)).returncode == 0
    source = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    written = yaml.safe_load((target / "docker-compose.yml").read_text())

    for name in APP_SERVICES:
        del source["services"][name]["build"]
        source["services"][name]["image"] = f"{IMAGE}:latest"
    source["services"]["nginx"]["ports"] = [f"{PORT}:8000"]
    source["volumes"]["app-data"] = {"name": VOLUME, "external": True}
    source.pop("x-app")
    written.pop("x-app")

    assert written == source


def test_missing_docker_is_explained(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    result = install(tmp_path, *standard_args(tmp_path / "stack"), path=str(empty))

    assert result.returncode == 1
    assert "Docker is not installed" in result.stderr
    assert not (tmp_path / "stack").exists()


def test_missing_compose_plugin_is_explained(tmp_path: Path, fake_docker: Path) -> None:
    (fake_docker / "docker").write_text("#!/usr/bin/env bash\nexit 1\n")

    result = install(tmp_path, *standard_args(tmp_path / "stack"))

    assert result.returncode == 1
    assert "Docker Compose plugin is missing" in result.stderr


@pytest.mark.parametrize(
    ("line", "entry"),
    [
        ("  build: .\n", "build"),
        ('      - "8000:8000"\n', "port"),
        ("    DATA_DIR: /data\n", "DATA_DIR"),
        ("    - app-data:/data\n", "app-data:/data"),
        ("  app-data:\n", "app-data"),
    ],
)
def test_an_unexpected_compose_file_stops_the_install(
    tmp_path: Path, fake_docker: Path, line: str, entry: str
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(REPO / ".env.example", checkout)
    original = (REPO / "docker-compose.yml").read_text()
    assert original.count(line) == 1
    (checkout / "docker-compose.yml").write_text(original.replace(line, ""))

    args = standard_args(tmp_path / "stack")
    args[args.index("--repo") + 1] = str(checkout)
    result = install(tmp_path, *args)

    assert result.returncode == 1
    assert f"unexpected shape near its {entry} entry" in result.stderr
    assert not (tmp_path / "stack" / "docker-compose.yml").exists()
    assert docker_calls(tmp_path) == ["compose version"]


@pytest.fixture
def raw_files() -> Iterator[str]:
    """The repository's files over loopback HTTP, as a raw-file host serves them."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(REPO))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_url_repo_gives_the_same_stack_as_a_checkout(
    tmp_path: Path, fake_docker: Path, raw_files: str
) -> None:
    target = tmp_path / "stack"

    local = install(tmp_path, *standard_args(target), "--dry-run")
    remote = install(tmp_path, *standard_args(target, repo=raw_files), "--dry-run")

    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
