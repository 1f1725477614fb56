#!/usr/bin/env bash
# Run a command with a Redis to talk to: the one on 127.0.0.1:6379 when it
# answers, otherwise a private redis-server on a free port, stopped afterwards.
# The command sees the address in TEST_REDIS_URL.
set -euo pipefail

if [ -n "${TEST_REDIS_URL:-}" ]; then
    exec "$@"
fi

if (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && read -r -t 2 reply <&3 \
    && [ "${reply%$'\r'}" = "+PONG" ]) 2>/dev/null; then
    export TEST_REDIS_URL="redis://127.0.0.1:6379/0"
    exec "$@"
fi

if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "No Redis answers on 127.0.0.1:6379; installing redis-server." >&2
        apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    else
        echo "No Redis answers on 127.0.0.1:6379 and redis-server is not installed." >&2
        echo "Install it (Debian: sudo apt-get install redis-server) or start one." >&2
        exit 1
    fi
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do
    [ -s "$dir/redis.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
export TEST_REDIS_URL="redis://127.0.0.1:$port/0"
"$@"
