"""The access log: no request can write a line of its own into it."""

from __future__ import annotations

import runpy
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn import util  # type: ignore[import-untyped]
from gunicorn.config import Config  # type: ignore[import-untyped]

from web.access_log import SafeAccessLogger, escape

CONF = Path(__file__).resolve().parents[2] / "web" / "gunicorn.conf.py"
FORGED_PATH = '/nope\n10.0.0.1 "GET /admin HTTP/1.1" 200 0 1ms'


@pytest.fixture
def conf() -> dict[str, Any]:
    return runpy.run_path(str(CONF))


def request_for(path: str, **headers: str) -> tuple[Any, Any, dict[str, Any]]:
    """A response, a request and a WSGI environ, as gunicorn hands them on."""
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/nope%0A",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "HTTP_USER_AGENT": headers.get("agent", "curl"),
    }
    resp = SimpleNamespace(status="404 NOT FOUND", sent=57, headers=[])
    req = SimpleNamespace(headers=list(headers.items()))
    return resp, req, environ


@pytest.fixture
def logger(conf: dict[str, Any], tmp_path: Path) -> SafeAccessLogger:
    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    config.set("access_log_format", conf["access_log_format"])
    return SafeAccessLogger(config)


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        ("/plain/path-1_2", "/plain/path-1_2"),
        ("/a\nb", "/a\\x0ab"),
        ("/a\r\nb", "/a\\x0d\\x0ab"),
        ("/\x00\x1b[31m\x7f", "/\\x00\\x1b[31m\\x7f"),
        ("/\x85\u2028\u2029", "/\\x85\\u2028\\u2029"),
        ("/a\\x0ab", "/a\\\\x0ab"),
        ("/\u00fcber", "/\u00fcber"),
    ],
)
def test_escape(raw: str, logged: str) -> None:
    assert escape(raw) == logged


def test_every_text_atom_is_escaped(logger: SafeAccessLogger) -> None:
    resp, req, environ = request_for(FORGED_PATH, Agent="evil\nagent")

    atoms = logger.atoms(resp, req, environ, timedelta(milliseconds=3))

    assert atoms["U"] == escape(FORGED_PATH)
    assert atoms["{agent}i"] == "evil\\x0aagent"
    assert atoms["{path_info}e"] == escape(FORGED_PATH)
    assert atoms["B"] == 57
    texts = [value for value in atoms.values() if isinstance(value, str)]
    assert not any("\n" in text or "\r" in text for text in texts)


def test_a_forged_path_stays_on_one_line(
    logger: SafeAccessLogger, tmp_path: Path
) -> None:
    resp, req, environ = request_for(FORGED_PATH)

    logger.access(resp, req, environ, timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()

    lines = (tmp_path / "access.log").read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('192.0.2.7 "GET /nope\\x0a10.0.0.1 \\"GET /admin')


def test_the_gunicorn_settings_use_it(conf: dict[str, Any]) -> None:
    assert util.load_class(conf["logger_class"]) is SafeAccessLogger


def test_the_control_socket_is_off(conf: dict[str, Any]) -> None:
    config = Config()
    config.set("control_socket_disable", conf["control_socket_disable"])

    assert config.control_socket_disable is True
