#!/bin/sh
# praxisnetz-entrypoint: `praxisnetz "$@"`, but on the first `serve` it creates the
# node from PRAXISNETZ_* variables when the data folder holds none yet, so
# `docker compose up` needs no manual step. Idempotent: a folder with praxisnetz.toml
# is never initialised again.
#
# The node's own PRAXISNETZ_* settings become the init arguments; one more variable:
#   INIT_AUTO_ACCEPT_HOSTS  hub only: member hosts approved without an editor (spaces)
set -eu

data_dir="${PRAXISNETZ_DATA_DIR:-/data}"

log() {
    printf 'praxisnetz-entrypoint: %s\n' "$*" >&2
}

# Same spelling as node/config.py reads for PRAXISNETZ_HUB and PRAXISNETZ_ALLOW_PRIVATE_NETWORK.
is_true() {
    case "$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" in
        1 | true | yes | on) return 0 ;;
        *) return 1 ;;
    esac
}

init_node() {
    : "${PRAXISNETZ_BASE_URL:?is needed for the first start (the public https URL of this node)}"
    : "${PRAXISNETZ_NAME:?is needed for the first start (the display name)}"
    : "${PRAXISNETZ_SLUG:?is needed for the first start (the handle, e.g. guetersloh)}"
    set -- init --data-dir "$data_dir" --base-url "$PRAXISNETZ_BASE_URL" \
        --name "$PRAXISNETZ_NAME" --slug "$PRAXISNETZ_SLUG" \
        --kind "${PRAXISNETZ_KIND:-municipality}"
    if [ -n "${PRAXISNETZ_AGS:-}" ]; then
        set -- "$@" --ags "$PRAXISNETZ_AGS"
    fi
    if is_true "${PRAXISNETZ_HUB:-false}"; then
        set -- "$@" --hub
    fi
    if is_true "${PRAXISNETZ_ALLOW_PRIVATE_NETWORK:-false}"; then
        set -- "$@" --allow-private-network
    fi
    set -f # host names are split on spaces, never glob-expanded
    for host in ${INIT_AUTO_ACCEPT_HOSTS:-}; do
        set -- "$@" --auto-accept-host "$host"
    done
    set +f
    log "no node in $data_dir yet; creating $PRAXISNETZ_BASE_URL"
    praxisnetz "$@"
}

if [ "${1:-}" = "serve" ] && [ ! -f "$data_dir/praxisnetz.toml" ]; then
    init_node
fi
exec praxisnetz "$@"
