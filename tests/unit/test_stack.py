"""The container stack and ``make stack``, checked without a Docker engine.

docker-compose.yml must satisfy the Compose Specification's schema (a copy is
kept in tests/data), and every command the stack runs must exist in the image:
executables installed by requirements.txt, modules that import, files that are
copied. The Dockerfile must run as a non-root user with a health check and no
secrets in it.
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.metadata
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from honcho.environ import parse_procfile
from jsonschema import Draft201909Validator
from rq import Worker

from sync.settings import DEFAULT_JOB_TIMEOUT, DEFAULT_MAX_BODY_BYTES

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
NGINX_CONF = REPO / "deploy" / "nginx.conf"
APP_SERVICES = ("web", "worker", "scheduler")
# Which distribution in requirements.txt installs each executable.
EXECUTABLES = {"gunicorn": "gunicorn", "rq": "rq"}
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|API_KEY|PRIVATE", re.IGNORECASE)
# The packages the image copies, and so the code that must find its imports.
IMAGE_PACKAGES = ("sync", "web", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def validator() -> Draft201909Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft201909Validator.check_schema(schema)
    return Draft201909Validator(schema)


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirements: str) -> dict[str, str]:
    """Distribution name to pinned version in one requirements file."""
    pins = {}
    for line in (REPO / requirements).read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[normalized(name.strip())] = version.strip()
    return pins


def imported_modules(package: str) -> set[str]:
    """Top-level names of every module imported anywhere in ``package``."""
    names: set[str] = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def service_argv(command: list[str]) -> list[str]:
    """The program and arguments a service runs, looking through ``sh -c``."""
    if command[:2] == ["sh", "-c"]:
        return without_exec(shlex.split(command[2].replace("$$", "$")))
    return command


def without_exec(argv: list[str]) -> list[str]:
    return argv[1:] if argv[0] == "exec" else argv


def option(argv: list[str], *names: str) -> str:
    for index, word in enumerate(argv):
        if word in names:
            return argv[index + 1]
    raise AssertionError(f"none of {names} in {argv}")


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "stack_healthcheck", REPO / "scripts" / "healthcheck.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_runs_in_image(argv: list[str]) -> None:
    """Fail unless ``argv`` names something the image installs or copies."""
    program = argv[0]
    if program == "python" and argv[1] == "-m":
        assert importlib.util.find_spec(argv[2]) is not None, argv
    elif program == "python":
        script = REPO / argv[1]
        assert script.is_file(), argv
        if script.name == "healthcheck.py":
            assert argv[2] in load_healthcheck().CHECKS, argv
    else:
        assert program in EXECUTABLES, f"{program} is not an expected executable"
        assert EXECUTABLES[program] in pinned("requirements.txt"), program
        assert (VENV_BIN / program).is_file(), f"{program} is not in .venv/bin"
        check_arguments(argv)


def check_arguments(argv: list[str]) -> None:
    """The config files, apps and classes the executables are told to load."""
    if argv[0] == "gunicorn":
        assert (REPO / option(argv, "-c", "--config")).is_file()
        module, _, factory = argv[-1].partition(":")
        assert factory.endswith("()")
        assert callable(getattr(importlib.import_module(module), factory[:-2]))
    if argv[0] == "rq":
        assert argv[1:3] == ["worker", "--with-scheduler"]
        dotted = option(argv, "-w", "--worker-class")
        module, _, name = dotted.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), name), Worker)


# --- docker-compose.yml ---------------------------------------------------


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], validator: Draft201909Validator
) -> None:
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(compose)
    ]

    assert errors == []


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        ("worker", "stop_grace_period", 150),
        ("web", "restart", ["always"]),
        ("web", "contianer_name", "typo"),
        ("redis", "healthcheck", {"test": ["CMD"], "every": "5s"}),
    ],
)
def test_schema_rejects_a_broken_compose_file(
    compose: dict[str, Any],
    validator: Draft201909Validator,
    service: str,
    key: str,
    value: object,
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"][service][key] = value

    assert not validator.is_valid(broken)


def test_compose_has_redis_web_worker_and_scheduler(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert set(services) == {"redis", "nginx", *APP_SERVICES}
    assert services["redis"]["image"].startswith("redis:7-alpine")
    assert "--appendonly" in services["redis"]["command"]
    volume = services["redis"]["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_one_image_and_wait_for_redis(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]

    assert service["build"] == "."
    assert service["image"] == compose["services"]["web"]["image"]
    assert service["env_file"] == ".env"
    assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert service["restart"] in {"always", "unless-stopped"}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_saved_settings_volume(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]

    # Set in the stack itself: an empty DATA_DIR= in .env would hide the image's.
    assert service["environment"]["DATA_DIR"] == "/data"
    assert service["volumes"] == ["app-data:/data"]
    assert compose["volumes"]["app-data"] is None


@pytest.mark.parametrize("name", ["redis", "nginx", *APP_SERVICES])
def test_every_service_has_a_health_check_and_restarts(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]

    assert service["healthcheck"]["test"][0] == "CMD"
    assert "restart" in service


def test_workers_can_be_scaled(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert all("container_name" not in service for service in services.values())
    assert [name for name in services if "ports" in services[name]] == ["nginx"]


def test_nginx_alone_faces_clients_and_hands_requests_to_web(
    compose: dict[str, Any],
) -> None:
    nginx = compose["services"]["nginx"]
    source, target, mode = nginx["volumes"][0].split(":")

    assert nginx["image"].startswith("nginx:") and nginx["image"].endswith("-alpine")
    assert nginx["ports"] == ["8000:8000"]
    assert (REPO / source).resolve() == NGINX_CONF
    assert target == "/etc/nginx/conf.d/default.conf" and mode == "ro"
    assert nginx["depends_on"] == {"web": {"condition": "service_started"}}
    assert "/nginx-health" in nginx["healthcheck"]["test"][-1]
    assert "ports" not in compose["services"]["web"]


def nginx_directives(text: str) -> dict[str, list[str]]:
    """Each directive's values, first word to the rest, comments left out."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].strip().rstrip(";{").split(None, 1)
        if words:
            found.setdefault(words[0], []).append(words[1] if len(words) > 1 else "")
    return found


def kibibytes(size: str) -> int:
    units = {"k": 1, "m": 1024}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size) // 1024


def test_nginx_buffers_with_short_timeouts_and_limits_each_client() -> None:
    found = nginx_directives(NGINX_CONF.read_text())

    assert found["client_header_timeout"] == ["10s"]
    assert found["client_body_timeout"] == ["10s"]
    (body,) = found["client_max_body_size"]
    assert DEFAULT_MAX_BODY_BYTES // 1024 < kibibytes(body) <= 4 * 1024
    assert found["proxy_request_buffering"] == ["on"]
    assert found["limit_conn_zone"] and found["limit_conn"]
    assert found["set"] == ["$web http://web:8000"]
    assert found["proxy_pass"] == ["$web"]
    headers = found["proxy_set_header"]
    assert "X-Forwarded-For $remote_addr" in headers
    assert "X-Forwarded-Proto $scheme" in headers


def test_nginx_accepts_its_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ include {NGINX_CONF}; }}\n"
    )

    done = subprocess.run(
        [nginx, "-t", "-c", str(main)], capture_output=True, text=True, timeout=30
    )

    assert done.returncode == 0, done.stderr


def test_worker_outlasts_a_job_when_stopped(compose: dict[str, Any]) -> None:
    grace = compose["services"]["worker"]["stop_grace_period"]
    match = re.fullmatch(r"(\d+)s", grace)

    assert match is not None, grace
    assert int(match.group(1)) > DEFAULT_JOB_TIMEOUT


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_commands_exist_in_the_image(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]

    assert_runs_in_image(service_argv(service["command"]))
    assert_runs_in_image(service["healthcheck"]["test"][1:])


def test_worker_reads_redis_and_queue_inside_the_container(
    compose: dict[str, Any],
) -> None:
    script = compose["services"]["worker"]["command"][2]

    # $$ keeps compose from filling these in from the host's environment.
    assert '--url "$$REDIS_URL"' in script
    assert "$${SYNC_QUEUE:-sync}" in script


# --- Dockerfile ---------------------------------------------------------------


def test_dockerfile_starts_from_python_slim(
    dockerfile: list[tuple[str, str]],
) -> None:
    assert dockerfile[0] == ("FROM", "python:3.11-slim")


def test_dockerfile_runs_as_a_non_root_user(
    dockerfile: list[tuple[str, str]],
) -> None:
    users = [rest for keyword, rest in dockerfile if keyword == "USER"]

    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_keeps_saved_settings_in_a_volume_the_app_owns(
    dockerfile: list[tuple[str, str]],
) -> None:
    (user,) = [rest for keyword, rest in dockerfile if keyword == "USER"]
    uid, gid = user.split(":")
    made = dockerfile.index(("RUN", f"install -d -o {uid} -g {gid} -m 700 /data"))
    volume = dockerfile.index(("VOLUME", '["/data"]'))

    assert ("ENV", "DATA_DIR=/data") in dockerfile
    # A new named volume takes /data's owner from the image, and changes to
    # the folder after VOLUME are thrown away.
    assert made < volume


def test_dockerfile_health_check_calls_health_with_python(
    dockerfile: list[tuple[str, str]],
) -> None:
    checks = [rest for keyword, rest in dockerfile if keyword == "HEALTHCHECK"]

    assert len(checks) == 1
    command = json.loads(checks[0].split("CMD", 1)[1])
    assert command == ["python", "scripts/healthcheck.py", "web"]
    assert_runs_in_image(command)
    assert load_healthcheck().DEFAULT_WEB_URL.endswith("/health")


def test_dockerfile_default_command_is_gunicorn(
    dockerfile: list[tuple[str, str]],
) -> None:
    commands = [json.loads(rest) for keyword, rest in dockerfile if keyword == "CMD"]

    assert commands == [["gunicorn", "-c", "web/gunicorn.conf.py", "web:create_app()"]]
    assert_runs_in_image(commands[0])


def test_dockerfile_installs_runtime_requirements_only(
    dockerfile: list[tuple[str, str]],
) -> None:
    installs = [rest for keyword, rest in dockerfile if "pip install" in rest]

    assert installs == ["pip install --no-compile -r requirements.txt"]
    assert "honcho" not in pinned("requirements.txt")


def test_dockerfile_copies_only_files_that_exist(
    dockerfile: list[tuple[str, str]],
) -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    }
    copies = [rest.split() for keyword, rest in dockerfile if keyword == "COPY"]

    assert copies
    for words in copies:
        sources = [word for word in words[:-1] if not word.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file"
            top = Path(source).parts[0]
            assert top not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_dockerfile_bakes_in_no_secrets(
    dockerfile: list[tuple[str, str]],
) -> None:
    for keyword, rest in dockerfile:
        if keyword in {"ENV", "ARG"}:
            assert not SECRET_NAME.search(rest), f"{keyword} {rest}"
        if keyword in {"COPY", "ADD"}:
            assert ".env" not in rest.split(), f"{keyword} {rest}"
        assert "whsec_" not in rest


def test_build_context_leaves_out_env_and_venv() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()

    assert ".env" in ignored
    assert ".venv/" in ignored


# --- requirements, Procfile and make stack ----------------------------------


@pytest.mark.parametrize(
    ("requirements", "name"),
    [
        ("requirements.txt", "gunicorn"),
        ("requirements.txt", "rq"),
        ("requirements.txt", "rq-dashboard"),
        # rq-dashboard imports six without declaring it.
        ("requirements.txt", "six"),
        ("requirements-dev.txt", "honcho"),
    ],
)
def test_stack_packages_are_pinned(requirements: str, name: str) -> None:
    assert re.fullmatch(r"\d+(\.\d+)+", pinned(requirements).get(name, ""))


@pytest.mark.parametrize("package", IMAGE_PACKAGES)
def test_image_code_imports_only_what_requirements_install(package: str) -> None:
    distributions = importlib.metadata.packages_distributions()
    third_party = imported_modules(package) - set(sys.stdlib_module_names)
    third_party -= {"__future__", *IMAGE_PACKAGES}
    runtime = pinned("requirements.txt")

    for module in sorted(third_party):
        names = {normalized(name) for name in distributions.get(module, [])}
        assert names & set(runtime), f"{package} imports {module}: not pinned"


def test_procfile_runs_the_same_processes() -> None:
    processes = parse_procfile((REPO / "Procfile").read_text()).processes

    assert set(processes) == set(APP_SERVICES)
    for command in processes.values():
        # exec: the shell honcho starts gives way, so signals reach the program.
        assert command.startswith("exec ")
        assert_runs_in_image(without_exec(shlex.split(command)))


def test_make_stack_runs_the_stack_script() -> None:
    makefile = (REPO / "Makefile").read_text()

    assert re.search(r"^stack: .*\n\tscripts/stack\.sh$", makefile, re.MULTILINE)
    assert (REPO / "scripts" / "stack.sh").stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(REPO / "scripts" / "stack.sh")], check=True)


# --- the health check script ------------------------------------------------


class HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_health_check_passes_on_a_healthy_web(
    health_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTHCHECK_URL", f"{health_server}/health")

    assert load_healthcheck().main(["web"]) == 0


def test_health_check_fails_on_an_unhealthy_web(
    health_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTHCHECK_URL", f"{health_server}/broken")

    assert load_healthcheck().main(["web"]) == 1


def test_health_check_needs_a_known_part() -> None:
    assert load_healthcheck().main(["database"]) == 2
    assert load_healthcheck().main([]) == 2


def test_redis_health_check_fails_without_redis_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)

    assert load_healthcheck().main(["redis"]) == 1
