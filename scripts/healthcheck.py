"""Container health checks: ``python scripts/healthcheck.py web|worker|redis``.

Docker runs this inside each container of the stack, so it needs nothing but
the image and the container's environment. It exits 0 when the part named is
healthy and 1 otherwise, printing one line that says why.

- ``web``: ``GET /health`` on the local gunicorn answers 2xx.
- ``worker``: an RQ worker of this container (same host name) is registered
  in Redis; RQ drops a worker's registration once its heartbeat stops.
- ``redis``: ``REDIS_URL`` answers PING (what the scheduler needs to work).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from collections.abc import Callable

from redis import Redis
from rq import Worker

DEFAULT_WEB_URL = "http://127.0.0.1:8000/health"
TIMEOUT_SECONDS = 3.0


def check_web() -> str:
    url = os.environ.get("HEALTHCHECK_URL", DEFAULT_WEB_URL)
    # urlopen raises for a refused connection and for any 4xx or 5xx answer.
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return f"{url} answered {response.status}"


def check_worker() -> str:
    host = socket.gethostname()
    workers = Worker.all(connection=_redis())
    names = [worker.name for worker in workers if worker.hostname == host]
    if not names:
        raise RuntimeError(f"no RQ worker of host {host} is registered in Redis")
    return f"RQ worker {', '.join(names)} is registered"


def check_redis() -> str:
    _redis().ping()
    return "Redis answers"


def _redis() -> Redis:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        raise RuntimeError("REDIS_URL is not set")
    return Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS)


CHECKS: dict[str, Callable[[], str]] = {
    "web": check_web,
    "worker": check_worker,
    "redis": check_redis,
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: healthcheck.py {'|'.join(CHECKS)}", file=sys.stderr)
        return 2

    try:
        print(CHECKS[argv[0]]())
    except Exception as exc:  # any failure at all means unhealthy
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
