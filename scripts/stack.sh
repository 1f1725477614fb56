#!/usr/bin/env bash
# Run the whole service on this machine, without Docker: Redis, web (gunicorn,
# with the job dashboard at /rq), an RQ worker and the scheduler, under honcho
# with the Procfile. Ctrl-C stops all of it.
#
# Redis: the one REDIS_URL in .env names, or else the one on 127.0.0.1:6379,
# when it answers; otherwise a private redis-server (appendonly) on a free
# port, keeping its data in .stack/redis.
#
# Without .env it also starts the sandbox (a fake Acronis and AlgaPSA) and
# points everything at it, with throwaway secrets, so a fresh clone shows a
# working service. STACK_PORT (default 8000) is the web port; TENANTS (default
# 40) the sandbox's number of customers.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="$PWD/.venv/bin"
PY="$BIN/python"
STATE="$PWD/.stack"
export STACK_PORT="${STACK_PORT:-8000}"
TENANTS="${TENANTS:-40}"
LOCAL_REDIS="redis://127.0.0.1:6379/0"

run_dir=$(mktemp -d)
pids=()

# Redis and the sandbox run in sessions of their own, so that Ctrl-C reaches
# only honcho's processes; they are stopped here once those have ended.
cleanup() {
    [ -z "${demo_prefix:-}" ] || forget_demo
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    print(probe.getsockname()[1])'
}

redis_answers() {
    [ -n "$1" ] && "$PY" -c 'import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()' \
        "$1" 2>/dev/null
}

dotenv_value() {
    "$PY" -c 'import sys; from dotenv import dotenv_values
print(dotenv_values(".env").get(sys.argv[1]) or "")' "$1"
}

# Wait up to five seconds for "$1" to succeed.
wait_for() {
    for _ in $(seq 50); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}

start_private_redis() {
    if ! command -v redis-server >/dev/null; then
        echo "No Redis answers and redis-server is not installed." >&2
        echo "Install it (Debian: sudo apt-get install redis-server) or start one" \
            "on 127.0.0.1:6379." >&2
        exit 1
    fi
    local port
    port=$(free_port)
    mkdir -p "$STATE/redis"
    setsid redis-server --port "$port" --bind 127.0.0.1 --appendonly yes \
        --dir "$STATE/redis" --logfile "$STATE/redis/redis.log" &
    pids+=($!)
    redis_url="redis://127.0.0.1:$port/0"
    wait_for redis_answers "$redis_url" || {
        echo "redis-server did not start; see $STATE/redis/redis.log" >&2
        exit 1
    }
    echo "Started a private Redis at $redis_url (data in .stack/redis)"
}

choose_redis() {
    local configured=""
    [ -f .env ] && configured=$(dotenv_value REDIS_URL)
    if redis_answers "$configured"; then
        redis_url="$configured"
    elif redis_answers "$LOCAL_REDIS"; then
        redis_url="$LOCAL_REDIS"
    else
        [ -n "$configured" ] && echo "REDIS_URL in .env does not answer." >&2
        start_private_redis
        return
    fi
    echo "Using the Redis at $redis_url"
}

sandbox_ready() {
    grep -q '^ready ' "$run_dir/sandbox.log"
}

start_sandbox() {
    local port
    port=$(free_port)
    setsid "$PY" -m sandbox --port "$port" --tenants "$TENANTS" \
        >"$run_dir/sandbox.log" 2>&1 &
    pids+=($!)
    wait_for sandbox_ready || {
        cat "$run_dir/sandbox.log" >&2
        echo "The sandbox did not start." >&2
        exit 1
    }
    echo "Started the sandbox at http://127.0.0.1:$port ($TENANTS customers)"
    "$PY" -m sandbox --port "$port" --print-env >>"$run_dir/stack.env"
}

webhook_secret() {
    "$PY" -c 'import base64, os
print("whsec_" + base64.b64encode(os.urandom(24)).decode())'
}

token() {
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))'
}

# A fresh sandbox repeats its tenant ids, so each run gets a key prefix and a
# queue of its own: links, metrics and jobs of an earlier run would clash.
demo_settings() {
    admin_password=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(12))')
    demo_prefix="stack-demo-$("$PY" -c 'import secrets; print(secrets.token_hex(4))')"
    cat >>"$run_dir/stack.env" <<EOF
ADMIN_USERNAME=admin
ADMIN_PASSWORD=$admin_password
SYNC_API_TOKEN=$(token)
WEBHOOK_SECRET=$(webhook_secret)
ALGA_WEBHOOK_SECRET=$(token)
SYNC_REDIS_PREFIX=$demo_prefix
SYNC_QUEUE=$demo_prefix
SYNC_CRON="*/5 * * * *"
ACRONIS_POLL_SECONDS=60
EOF
}

# Delete the demo run's keys and its queue's RQ keys, while Redis still runs.
forget_demo() {
    "$PY" - "$redis_url" "$demo_prefix" <<'PY' || true
import sys

import redis

from worker.queueing import drop_queue

url, prefix = sys.argv[1], sys.argv[2]
connection = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
gone = drop_queue(connection, prefix)
for key in connection.scan_iter(match=f"{prefix}:*", count=1000):
    gone += connection.unlink(key)
print(f"Deleted this run's {gone} Redis keys ({prefix}:* and queue {prefix})")
PY
}

show_urls() {
    local web="http://127.0.0.1:$STACK_PORT"
    echo
    echo "  web        $web/"
    echo "  API docs   $web/docs"
    if [ -n "${admin_password:-}" ]; then
        echo "  jobs       $web/rq   (log in as admin / $admin_password)"
        echo "  secrets    $run_dir/stack.env (SYNC_API_TOKEN, WEBHOOK_SECRET," \
            "ALGA_WEBHOOK_SECRET; deleted on exit)"
    else
        echo "  jobs       $web/rq   (ADMIN_USERNAME / ADMIN_PASSWORD from .env;" \
            "off without a password)"
    fi
    echo
    echo "Ctrl-C stops everything."
    echo
}

# Export .env (variables already set win over it), then the stack's own
# settings (which win over both). python-dotenv reads the files, as the
# command line does; honcho's own .env reader would mangle values with spaces.
export_settings() {
    "$PY" - "$@" >"$run_dir/exports.sh" <<'PY'
import os
import shlex
import sys
from pathlib import Path

from dotenv import dotenv_values

user, stack = Path(sys.argv[1]), Path(sys.argv[2])
values = {}
if user.is_file():
    values = {k: v for k, v in dotenv_values(user).items() if k not in os.environ}
values.update(dotenv_values(stack))
for key, value in values.items():
    print(f"export {key}={shlex.quote(value or '')}")
PY
    # shellcheck disable=SC1091
    source "$run_dir/exports.sh"
}

main() {
    : >"$run_dir/stack.env"
    choose_redis
    if [ -f .env ]; then
        echo "Using the settings in .env"
    else
        echo "No .env: running against the sandbox with throwaway secrets"
        start_sandbox
        demo_settings
    fi
    echo "REDIS_URL=$redis_url" >>"$run_dir/stack.env"
    export_settings .env "$run_dir/stack.env"
    export SYNC_QUEUE="${SYNC_QUEUE:-sync}" STACK_BIND="127.0.0.1:$STACK_PORT"

    show_urls
    PATH="$BIN:$PATH" "$BIN/honcho" --procfile Procfile --env /dev/null start
}

main
