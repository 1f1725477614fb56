#!/usr/bin/env bash
# Install the alga-acronis-sync stack on a server from the prebuilt image.
#
#   install.sh --repo URL|PATH --image-repo IMAGE --port PORT [--dir DIR] [--dry-run]
#
# The compose file is the repository's docker-compose.yml with three changes:
# the app services run IMAGE:latest instead of building, nginx (in front of
# web) publishes PORT, and the app-data volume that holds DATA_DIR (/data) is
# an external volume of a fixed name, created by this script, so that it
# outlives 'docker compose down -v'. nginx's deploy/nginx.conf is copied
# beside it. The file is fetched from the repository's raw files (a GitHub
# page URL is turned into its raw URL on branch main; any other URL is taken
# as the folder that holds the raw files), or copied from a local checkout.
#
# .env is written from .env.example, with fresh random secrets, only when
# there is none: an existing .env is never touched. Running the script again
# rewrites nothing that is already right. --dry-run prints every action and
# the files it would write, changes nothing and needs no Docker.
set -euo pipefail

DEFAULT_DIR=/opt/alga-acronis-sync
DATA_VOLUME=alga-acronis-sync-data
COMPOSE_NAME=docker-compose.yml
# Secrets stay out of dry-run output, so two dry runs print the same thing.
HIDDEN="<random, made at install>"

usage() {
    cat <<EOF
usage: install.sh --repo URL|PATH --image-repo IMAGE --port PORT [--dir DIR] [--dry-run]

  --repo        the project's repository: a GitHub URL, a URL of its raw files,
                or a local checkout
  --image-repo  the image without a tag, e.g. ghcr.io/OWNER/alga-acronis-sync;
                IMAGE:latest is run
  --port        the host port of nginx, in front of web and its setup wizard
  --dir         where the stack lives (default $DEFAULT_DIR)
  --dry-run     print what would be done; change nothing
EOF
}

usage_error() {
    echo "install.sh: $1" >&2
    usage >&2
    exit 2
}

fail() {
    echo "install.sh: $1" >&2
    exit 1
}

parse_args() {
    repo="" image="" port="" dir="$DEFAULT_DIR" dry_run=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --repo | --image-repo | --port | --dir)
                [ $# -ge 2 ] || usage_error "$1 needs a value"
                case "$1" in
                    --repo) repo="$2" ;;
                    --image-repo) image="$2" ;;
                    --port) port="$2" ;;
                    --dir) dir="$2" ;;
                esac
                shift 2
                ;;
            --dry-run) dry_run=1 && shift ;;
            -h | --help) usage && exit 0 ;;
            *) usage_error "unknown argument: $1" ;;
        esac
    done
    check_args
}

check_args() {
    [ -n "$repo" ] || usage_error "--repo is required"
    [ -n "$image" ] || usage_error "--image-repo is required"
    [ -n "$port" ] || usage_error "--port is required"
    if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
        usage_error "--port must be a number from 1 to 65535, not '$port'"
    fi
    # A colon after the last slash is a tag; a registry's port comes before it.
    if [[ "${image##*/}" == *:* || "$image" == *@* ]]; then
        usage_error "--image-repo takes no tag or digest ('$image'): :latest is used"
    fi
    [[ "$dir" == /* ]] || dir="$PWD/$dir"
}

# Print one action; carry it out unless this is a dry run.
run() {
    echo "+ $*"
    [ "$dry_run" = 1 ] || "$@"
}

raw_base() {
    local url="${repo%/}"
    url="${url%.git}"
    if [[ "$url" =~ ^https://github\.com/([^/]+/[^/]+)$ ]]; then
        echo "https://raw.githubusercontent.com/${BASH_REMATCH[1]}/main"
    else
        echo "$url"
    fi
}

# The text of one of the repository's files on standard output.
repo_file() {
    if [ -d "$repo" ]; then
        [ -f "$repo/$1" ] || fail "$repo has no $1: is it a checkout of the project?"
        cat "$repo/$1"
    elif [[ "$repo" =~ ^https?:// ]]; then
        command -v curl >/dev/null || fail "curl is needed to fetch $1 from $repo"
        curl -fsSL "$(raw_base)/$1" || fail "could not fetch $1 from $(raw_base)"
    else
        fail "--repo '$repo' is neither a folder nor an http(s) URL"
    fi
}

check_docker() {
    if ! command -v docker >/dev/null; then
        fail "Docker is not installed. Install Docker Engine with its compose plugin
(https://docs.docker.com/engine/install/), then run this again."
    fi
    if ! docker compose version >/dev/null 2>&1; then
        fail "the Docker Compose plugin is missing ('docker compose' does not run).
Install it (Debian, Ubuntu: apt-get install docker-compose-plugin) and run this again."
    fi
}

# The repository's compose file, turned to the prebuilt image. It already
# sets DATA_DIR and mounts the app-data volume; here that volume becomes the
# external one this script creates. Each line the change relies on must be
# found once, so a reshaped file stops the install instead of yielding a
# half-changed stack.
render_compose() {
    local source
    source=$(repo_file "$COMPOSE_NAME")
    printf '%s\n' "$source" | awk -v image="$image:latest" -v port="$port" \
        -v volume="$DATA_VOLUME" '
        BEGIN {
            print "# Written by scripts/install.sh from the project'"'"'s"
            print "# docker-compose.yml: it runs " image
            print "# and keeps DATA_DIR on the volume " volume "."
            print "# Running the installer again replaces edits made here."
            print ""
        }
        /^  build: \.$/ { seen["build"]++; next }
        /^  image: / && !seen["image"]++ { print "  image: " image; next }
        /^      - "8000:8000"$/ {
            seen["port"]++
            print "      - \"" port ":8000\""
            next
        }
        /^    DATA_DIR: \/data$/ { seen["DATA_DIR"]++ }
        /^    - app-data:\/data$/ { seen["app-data:/data"]++ }
        /^  app-data:$/ {
            seen["app-data"]++
            print
            print "    name: " volume
            print "    external: true"
            next
        }
        { print }
        END {
            split("build image port DATA_DIR app-data:/data app-data", keys, " ")
            for (k in keys) {
                if (seen[keys[k]] != 1) {
                    print "docker-compose.yml has an unexpected shape near its " \
                        keys[k] " entry" > "/dev/stderr"
                    exit 1
                }
            }
        }' || fail "cannot derive the stack from $repo's $COMPOSE_NAME"
}

random_base64() {
    if command -v openssl >/dev/null; then
        openssl rand -base64 "$1"
    else
        head -c "$1" /dev/urandom | base64
    fi | tr -d '\n'
}

random_hex() {
    if command -v openssl >/dev/null; then
        openssl rand -hex "$1"
    else
        od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
    fi
}

# .env.example with the service's secrets filled in; in a dry run they are
# shown as a placeholder. Values go through the environment, not argv, so
# that no process listing shows them.
render_env() {
    local token webhook password
    token="$HIDDEN" webhook="$HIDDEN" password="$HIDDEN"
    if [ "$dry_run" = 0 ]; then
        token=$(random_hex 32)
        webhook="whsec_$(random_base64 32)"
        password=$(random_base64 18)
    fi
    repo_file .env.example | SYNC_API_TOKEN="$token" WEBHOOK_SECRET="$webhook" \
        ADMIN_PASSWORD="$password" awk '
        BEGIN { split("SYNC_API_TOKEN WEBHOOK_SECRET ADMIN_PASSWORD", names, " ") }
        {
            for (n in names) {
                if (index($0, names[n] "=") == 1) {
                    $0 = names[n] "=" ENVIRON[names[n]]
                    done[names[n]] = 1
                }
            }
            print
        }
        END {
            for (n in names) {
                if (!done[names[n]]) print names[n] "=" ENVIRON[names[n]]
            }
        }'
}

show_file() {
    local line
    while IFS= read -r line; do
        printf '    | %s\n' "$line"
    done <<<"$1"
}

# Write $2 to the file $1 with mode $3, through a temporary file in the same
# folder so that a reader never sees half of it.
write_file() {
    local target="$1" text="$2" mode="$3" tmp
    echo "+ write $target (mode $mode)"
    if [ "$dry_run" = 1 ]; then
        show_file "$text"
        return
    fi
    tmp=$(mktemp "$target.XXXXXX")
    printf '%s\n' "$text" >"$tmp"
    chmod "$mode" "$tmp"
    mv "$tmp" "$target"
}

install_compose() {
    local target="$dir/$COMPOSE_NAME" text
    text=$(render_compose)
    if [ -f "$target" ] && [ "$(cat "$target")" = "$text" ]; then
        echo "  keep $target (already up to date)"
    else
        write_file "$target" "$text" 644
    fi
}

# nginx's configuration, which the compose file mounts from deploy/.
install_proxy_config() {
    local target="$dir/deploy/nginx.conf" text
    text=$(repo_file deploy/nginx.conf)
    if [ -f "$target" ] && [ "$(cat "$target")" = "$text" ]; then
        echo "  keep $target (already up to date)"
        return
    fi
    [ -d "$dir/deploy" ] || run mkdir -p "$dir/deploy"
    write_file "$target" "$text" 644
}

install_env() {
    local target="$dir/.env" text
    if [ -f "$target" ]; then
        echo "  keep $target (an existing .env is never overwritten)"
        return
    fi
    text=$(render_env)
    write_file "$target" "$text" 600
}

# The volume is external so that it outlives 'docker compose down -v'; a new
# one is handed to the image's user, who cannot write to a root-owned /data.
create_volume() {
    local user
    if [ "$dry_run" = 0 ] && docker volume inspect "$DATA_VOLUME" >/dev/null 2>&1; then
        echo "  keep volume $DATA_VOLUME (exists)"
        return
    fi
    run docker volume create "$DATA_VOLUME"
    user="<the image's user>"
    if [ "$dry_run" = 0 ]; then
        user=$(docker image inspect --format '{{.Config.User}}' "$image:latest")
    fi
    if [ -n "$user" ]; then
        run docker run --rm --user 0 --entrypoint chown -v "$DATA_VOLUME:/data" \
            "$image:latest" "$user" /data
    fi
}

server_host() {
    local host
    host=$(hostname -I 2>/dev/null | awk '{ print $1 }') || true
    [ -n "$host" ] || host=$(hostname 2>/dev/null) || true
    echo "${host:-localhost}"
}

report() {
    echo
    [ "$dry_run" = 0 ] || echo "Dry run: nothing was changed."
    echo "Setup wizard: http://$(server_host):$port/setup"
    echo "Admin login: ADMIN_USERNAME and ADMIN_PASSWORD in $dir/.env" \
        "(mode 600); the wizard asks for that password as its setup token"
}

main() {
    parse_args "$@"
    if [ "$dry_run" = 1 ]; then
        echo "Dry run: installing into $dir from $image:latest (nothing is changed)"
    else
        echo "Installing into $dir from $image:latest"
        check_docker
    fi
    if [ -d "$dir" ]; then
        echo "  keep $dir (exists)"
    else
        run mkdir -p "$dir"
    fi
    install_compose
    install_proxy_config
    install_env

    local compose=(docker compose -f "$dir/$COMPOSE_NAME")
    run "${compose[@]}" pull
    create_volume
    run "${compose[@]}" up -d
    report
}

main "$@"
