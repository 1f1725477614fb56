"""Helpers for the worker tests: real `rq worker` processes and the scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from sandbox.process import REPO
from sync.settings import Settings
from worker import queueing

RQ = Path(sys.executable).parent / "rq"
STOP_SECONDS = 15


def wait_until(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting after {timeout} s")
        time.sleep(0.1)


def queue_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    """The sandbox's environment with a queue of the test's own and quick retries."""
    return {
        **env,
        "SYNC_QUEUE": f"test-{uuid.uuid4().hex[:10]}",
        "SYNC_JOB_TIMEOUT": "10",
        "SYNC_RETRY_DELAYS": "1 1 1",
        "ACRONIS_POLL_SECONDS": "0",
        "HTTP_MAX_ATTEMPTS": "1",
        **extra,
    }


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal a process group started by these helpers and wait for it."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_SECONDS)


def spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A group of its own, so the worker and its job's process stop together.
    return subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def tracked_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """For a fixture: processes a test starts, every one stopped afterwards.

    A worker's own children (RQ's scheduler, a job's process) can outlive a
    worker killed on purpose; every process named after a test queue goes too.
    """
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop(process, signal.SIGKILL)
    for queue in _QUEUES:
        kill_named(queue)
    _QUEUES.clear()


_QUEUES: set[str] = set()


def kill_named(word: str) -> None:
    """SIGKILL every process of this user whose command line holds ``word``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if word.encode() in command:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours


def start_worker(
    started: list[subprocess.Popen[bytes]], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    command = [str(RQ), "worker", "--url", env["REDIS_URL"], "--with-scheduler"]
    command += ["--worker-class", "worker.jobs.SyncWorker", env["SYNC_QUEUE"]]
    _QUEUES.add(env["SYNC_QUEUE"])
    process = spawn(command, env)
    started.append(process)
    return process


def start_scheduler(
    started: list[subprocess.Popen[bytes]], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    process = spawn([sys.executable, "-m", "worker.scheduler"], env)
    started.append(process)
    return process


def drop_queue(connection: redis.Redis, name: str) -> None:
    """Remove the test queue's jobs and registries from the shared Redis."""
    queueing.drop_queue(connection, name)


def settings_of(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)
