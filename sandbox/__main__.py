"""``python -m sandbox``: serve both fake remotes on one loopback port.

Prints ``ready http://HOST:PORT`` once listening, so a parent process can
wait for it, and stops cleanly (exit 0) on SIGINT or SIGTERM. With
``--print-env`` it prints the settings that point the sync at such a
sandbox and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from werkzeug.serving import make_server

from sandbox.app import ACRONIS_PREFIX, ALGA_PREFIX, create_app
from sandbox.data import partner_root_id
from sandbox.state import (
    ACRONIS_CLIENT_ID,
    ACRONIS_CLIENT_SECRET,
    ALGA_API_KEY,
    RATE_PER_MINUTE,
    Options,
    SandboxState,
)

log = logging.getLogger("sandbox")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tenants", type=int, default=40, help="customer tenants")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--enforce-rate-limit", action="store_true")
    parser.add_argument(
        "--rate-per-minute",
        type=float,
        default=RATE_PER_MINUTE,
        help="AlgaPSA calls refilled a minute; the burst is twice this",
    )
    parser.add_argument("--token-ttl", type=int, default=7200, help="seconds")
    parser.add_argument("--duplicate-names", type=int, default=0, help="pairs")
    parser.add_argument("--alga-clients", type=int, default=0)
    parser.add_argument("--print-env", action="store_true")
    args = parser.parse_args(argv)
    if args.tenants < 0 or args.duplicate_names < 0 or args.alga_clients < 0:
        parser.error(
            "--tenants, --duplicate-names and --alga-clients cannot be negative"
        )
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error("--fail-rate is a fraction from 0 to 1")
    return args


def env_lines(host: str, port: int, seed: int) -> list[str]:
    """The sync's settings for a sandbox at ``host:port`` made with ``seed``."""
    base = f"http://{host}:{port}"
    return [
        f"ACRONIS_BASE_URL={base}{ACRONIS_PREFIX}",
        f"ACRONIS_CLIENT_ID={ACRONIS_CLIENT_ID}",
        f"ACRONIS_CLIENT_SECRET={ACRONIS_CLIENT_SECRET}",
        f"ACRONIS_TENANT_ID={partner_root_id(seed)}",
        f"ALGA_BASE_URL={base}{ALGA_PREFIX}",
        f"ALGA_API_TOKEN={ALGA_API_KEY}",
    ]


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        tenants=args.tenants,
        seed=args.seed,
        latency_ms=args.latency_ms,
        fail_rate=args.fail_rate,
        enforce_rate_limit=args.enforce_rate_limit,
        rate_per_minute=args.rate_per_minute,
        token_ttl=args.token_ttl,
        duplicate_names=args.duplicate_names,
        alga_clients=args.alga_clients,
    )


def serve(args: argparse.Namespace) -> int:
    state = SandboxState(options_from(args))
    server = make_server(args.host, args.port, create_app(state), threaded=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for the serving loop, which runs on this very
        # thread, so it has to be called from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    url = f"http://{args.host}:{server.server_port}"
    log.info("sandbox serving %d customer tenants at %s", args.tenants, url)
    print(f"ready {url}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_env:
        print("\n".join(env_lines(args.host, args.port, args.seed)), flush=True)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    # One line per request would slow a 10,000-tenant run and bury the log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
