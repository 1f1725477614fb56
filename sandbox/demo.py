"""``make demo``: start the sandbox, sync it twice with the real CLI, stop it.

The second sync must find every tenant unchanged and write nothing; the demo
says so from the sandbox's own call counts, and fails loudly when it is not so.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

from sandbox.process import run_sandbox

SYNC_VARIABLE_PREFIXES = ("ACRONIS_", "ALGA_", "SYNC_", "REDIS_", "MAPPING_", "DRY_")


def sync_env(settings: dict[str, str]) -> dict[str, str]:
    """The environment without the user's own sync settings, plus the sandbox's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SYNC_VARIABLE_PREFIXES)
    }
    # A one-shot demo needs no Redis: the second run finds its links again.
    return {**env, **settings, "REDIS_URL": ""}


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def sync(env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "sync", "--env-file", os.devnull, "reconcile"]
    return subprocess.run(command, env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    if not port_is_free(args.port):
        print(f"Port {args.port} is in use: run `make demo PORT=<another port>`.")
        return 2
    options = ("--tenants", str(args.tenants))
    with run_sandbox(*options, port=args.port, seed=args.seed) as sandbox:
        env = sync_env(sandbox.settings)
        print(
            f"\n== Sandbox with {args.tenants} customer tenants at {sandbox.base_url}"
        )
        print("\n== First sync: customers become AlgaPSA clients\n", flush=True)
        first = sync(env)
        before = sandbox.alga_writes()
        print("\n== Second sync: nothing changed, so nothing is written\n", flush=True)
        second = sync(env)
        written = sandbox.alga_writes() - before

    print(f"\nThe second sync wrote {written} times to AlgaPSA.")
    if first != 0 or second != 0 or written != 0:
        print("The demo did not go as it should: see the summaries above.")
        return 1
    print("Every synced tenant was unchanged: the sync is idempotent.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
