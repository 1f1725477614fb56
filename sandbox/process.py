"""Run the sandbox as a separate process and talk to its control routes.

The demo, the end-to-end tests and the benchmark all start the sandbox the
way a user does, ``python -m sandbox``, and use this to wait for it, read its
call counts and change its data.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
CONTROL_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings_lines(port: int, seed: int) -> dict[str, str]:
    """The settings that point the sync at a sandbox on ``port`` (``--print-env``)."""
    command = [sys.executable, "-m", "sandbox", "--port", str(port)]
    printed = subprocess.run(
        [*command, "--seed", str(seed), "--print-env"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout
    pairs = (line.partition("=") for line in printed.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}


@dataclass
class RunningSandbox:
    """A sandbox process, the settings that reach it, and its control routes."""

    base_url: str
    settings: dict[str, str]
    process: subprocess.Popen[str]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        answer = requests.request(
            method,
            f"{self.base_url}/_sandbox{path}",
            json=body,
            timeout=CONTROL_TIMEOUT,
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "/stats")
        return result

    def alga_writes(self) -> int:
        return int(self.stats()["writes"]["alga"])

    def customers(self) -> list[dict[str, Any]]:
        tenants = self.control("GET", "/acronis/tenants")
        return [tenant for tenant in tenants if tenant["kind"] == "customer"]

    def clients(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.control("GET", "/alga/clients")
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def run_sandbox(
    *options: str, port: int | None = None, seed: int = 1
) -> Iterator[RunningSandbox]:
    """Start ``python -m sandbox`` with ``options``; stop it on leaving."""
    port = port or free_port()
    command = [sys.executable, "-m", "sandbox", "--port", str(port)]
    command += ["--seed", str(seed), *options]
    settings = settings_lines(port, seed)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    sandbox = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"the sandbox did not start; it said {line!r}")
        sandbox = RunningSandbox(line.split(" ", 1)[1].strip(), settings, process)
        yield sandbox
    finally:
        process.terminate()
        process.wait(timeout=STOP_TIMEOUT)
