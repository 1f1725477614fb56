"""Measure the webhook receiver under load, and the time from webhook to write.

Run with ``make bench-webhooks``. In one run it starts:

- gunicorn serving our receiver, and gunicorn serving a plain Flask route that
  only answers 202 (the reference: what the server costs with no work);
- ``wrk`` with a Lua script that cycles through pre-signed Standard Webhooks
  deliveries, each with its own webhook id, against both;
- a sandbox and one real ``rq worker``, then signed webhooks one at a time
  for tenants without a client, timing each until the sandbox's AlgaPSA
  shows the new client.

The process helpers here also serve the integration tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests
from standardwebhooks.webhooks import Webhook

from sandbox.process import REPO, free_port, run_sandbox

BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
BENCH_SECRET = "whsec_" + "YmVuY2htYXJrIHNlY3JldCwgMzIgYnl0ZXMgbG9uZyE="


def signed_headers(secret: str, body: bytes, message_id: str = "") -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed now with ``secret``."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body.decode()),
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited ({process.returncode})")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {START_TIMEOUT:.0f} s")


@contextmanager
def run_web(
    env: dict[str, str], *, app: str = "web:create_app()", port: int | None = None
) -> Iterator[str]:
    """Serve ``app`` with gunicorn and our config; yield its base URL."""
    port = port or free_port()
    env = {"PYTHONPATH": str(REPO), **env, "PORT": str(port), "HOST": "127.0.0.1"}
    command = [str(BIN / "gunicorn"), "-c", "web/gunicorn.conf.py", app]
    process = subprocess.Popen(command, env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/health", process)
        yield base
    finally:
        _stop(process)


@contextmanager
def run_worker(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """One real ``rq worker`` with the scheduler, on the env's SYNC_QUEUE."""
    command = [str(BIN / "rq"), "worker", "--with-scheduler", "--url"]
    command += [env["REDIS_URL"], "--worker-class", "worker.jobs.SyncWorker"]
    command += ["--quiet", env.get("SYNC_QUEUE", "sync")]
    # A session of its own, so that RQ's scheduler process, which the worker
    # starts, is stopped with it.
    process = subprocess.Popen(
        command,
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        _stop(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


_REFERENCE_APP = """
from flask import Flask, request

def create() -> Flask:
    app = Flask("reference")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/webhooks/acronis")
    def receive():
        request.get_data()
        return {"accepted": True}, 202

    return app
"""

_LUA = """
local requests = {}
local next_one = 1
init = function(args)
  for line in io.lines(args[1]) do
    local method, path, headers_json, body = line:match("^(%S+)\\t(%S+)\\t(.-)\\t(.*)$")
    local headers = {}
    for name, value in headers_json:gmatch('"([^"]+)": "([^"]*)"') do
      headers[name] = value
    end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
end
request = function()
  local chosen = requests[next_one]
  next_one = next_one % #requests + 1
  return chosen
end
"""


def write_requests(path: Path, count: int, tenants: list[str]) -> None:
    """Pre-sign ``count`` deliveries, each with its own webhook id."""
    with path.open("w") as out:
        for number in range(count):
            body = json.dumps({"tenant_id": tenants[number % len(tenants)]})
            headers = signed_headers(BENCH_SECRET, body.encode())
            out.write(f"POST\t/webhooks/acronis\t{json.dumps(headers)}\t{body}\n")


def run_wrk(
    url: str, script: Path, requests_file: Path, seconds: int, connections: int
) -> dict[str, float]:
    """Drive ``url`` with wrk; return requests/s, p50 and p99 (ms), and non-2xx."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url, "--", str(requests_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        "rps": _number(r"Requests/sec:\s+([\d.]+)", out),
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
        "errors": _number(r"Non-2xx or 3xx responses:\s+(\d+)", out),
    }


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency(text: str, label: str) -> float:
    found = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", text)
    if found is None:
        return float("nan")
    return float(found.group(1)) * _UNIT_MS[found.group(2)]


def _service_env(sandbox_settings: dict[str, str], redis_url: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        **sandbox_settings,
        "REDIS_URL": redis_url,
        "SYNC_REDIS_PREFIX": f"bench-{tag}",
        "SYNC_QUEUE": f"bench-{tag}",
        "WEBHOOK_SECRET": BENCH_SECRET,
        "MAPPING_FILE": str(REPO / "mapping.yaml"),
        "ACRONIS_POLL_SECONDS": "0",
        "SYNC_JOB_TIMEOUT": "30",
        "LOG_LEVEL": "WARNING",
    }


def _forget_run(redis_url: str, env: dict[str, str]) -> None:
    """Remove what a run left in Redis: its prefix and its queue."""
    from rq import Queue

    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"{env['SYNC_REDIS_PREFIX']}:*"):
        connection.delete(key)
    Queue(env["SYNC_QUEUE"], connection=connection).delete(delete_jobs=True)


def load_phase(
    env: dict[str, str], tenants: list[str], seconds: int, connections: int
) -> dict[str, dict[str, float]]:
    """Requests/s and latency of the reference route and of our receiver."""
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "reference_app.py").write_text(_REFERENCE_APP)
        (folder / "cycle.lua").write_text(_LUA)
        for name, app in (
            ("plain Flask", "reference_app:create()"),
            ("receiver", "web:create_app()"),
        ):
            requests_file = folder / "requests.tsv"
            write_requests(requests_file, 6000 * seconds, tenants)
            path = f"{folder}{os.pathsep}{REPO}"
            with run_web({**env, "PYTHONPATH": path}, app=app) as base:
                url = f"{base}/webhooks/acronis"
                script = folder / "cycle.lua"
                results[name] = run_wrk(
                    url, script, requests_file, seconds, connections
                )
    return results


def _has_client(clients: list[dict[str, object]], tenant_id: str) -> bool:
    return any(tenant_id in json.dumps(client) for client in clients)


def write_latency(
    env: dict[str, str], sandbox_url: str, tenants: list[str]
) -> list[float]:
    """Seconds from each signed webhook to its client appearing in AlgaPSA."""
    timings = []
    with run_web(env) as base, run_worker(env):
        time.sleep(2.0)  # let the worker register and go idle
        for tenant_id in tenants:
            body = json.dumps({"tenant_id": tenant_id}).encode()
            started = time.monotonic()
            answer = requests.post(
                f"{base}/webhooks/acronis",
                data=body,
                headers=signed_headers(BENCH_SECRET, body),
                timeout=10,
            )
            answer.raise_for_status()
            while time.monotonic() - started < 30:
                clients = requests.get(
                    f"{sandbox_url}/_sandbox/alga/clients", timeout=10
                )
                if _has_client(clients.json(), tenant_id):
                    timings.append(time.monotonic() - started)
                    break
                time.sleep(0.005)
            time.sleep(0.2)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per load run")
    parser.add_argument("--samples", type=int, default=20, help="timed writes")
    parser.add_argument("--connections", type=int, default=8, help="wrk's")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    redis_url = os.environ.get("TEST_REDIS_URL") or os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/0"
    )
    with run_sandbox("--tenants", str(200 + args.samples), seed=11) as sandbox:
        ids = [t["id"] for t in sandbox.customers() if t["enabled"]]
        ids = [i for i in ids if not _has_client(sandbox.clients(), i)]
        load_env = _service_env(sandbox.settings, redis_url)
        write_env = _service_env(sandbox.settings, redis_url)
        try:
            load = load_phase(
                load_env, ids[: -args.samples], args.seconds, args.connections
            )
            timings = write_latency(write_env, sandbox.base_url, ids[-args.samples :])
        finally:
            _forget_run(redis_url, load_env)
            _forget_run(redis_url, write_env)
    report(load, timings, args.samples)
    return 0


def report(
    load: dict[str, dict[str, float]], timings: list[float], samples: int
) -> None:
    print(f"{'server':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, figures in load.items():
        print(
            f"{name:<12} {figures['rps']:>8.0f} {figures['p50']:>8.2f} "
            f"{figures['p99']:>8.2f} {figures['errors']:>8.0f}"
        )
    if timings:
        ordered = sorted(timings)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(
            f"webhook to AlgaPSA write ({len(timings)} of {samples}): "
            f"p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )
    else:
        print("webhook to AlgaPSA write: no write was seen")


if __name__ == "__main__":
    sys.exit(main())
