#!/bin/sh
# praxisnetz-entrypoint: `praxisnetz "$@"`, but on the first `serve` it creates the
# node from PRAXISNETZ_* variables when the data folder holds none yet, so
# `docker compose up` needs no manual step. Idempotent: a folder with praxisnetz.toml
# is never initialised again.
#
# Variables read here (besides the node's own PRAXISNETZ_* settings):
#   INIT_AUTO_ACCEPT_HOSTS  hub only: member hosts approved without an editor (spaces)
#   EXTRA_CA_FILE           a PEM certificate to trust in addition to the system CAs
#                           (the demo's Caddy-internal root); waits up to 60 s for it
#   SYSTEM_CA_FILE          the system bundle (default: Debian's)
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

# Python's ssl module reads SSL_CERT_FILE, so one combined bundle makes the extra CA
# trusted for every outgoing request without touching the image's trust store.
trust_extra_ca() {
    extra="${EXTRA_CA_FILE:-}"
    [ -n "$extra" ] || return 0
    waited=0
    while [ ! -s "$extra" ] && [ "$waited" -lt 60 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if [ ! -s "$extra" ]; then
        log "EXTRA_CA_FILE $extra does not exist; outgoing https uses the system CAs only"
        return 0
    fi
    bundle="${TMPDIR:-/tmp}/praxisnetz-ca-bundle.pem"
    system="${SYSTEM_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}"
    : >"$bundle"
    if [ -s "$system" ]; then
        cat "$system" >>"$bundle"
    fi
    cat "$extra" >>"$bundle"
    SSL_CERT_FILE="$bundle"
    export SSL_CERT_FILE
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

trust_extra_ca
if [ "${1:-}" = "serve" ] && [ ! -f "$data_dir/praxisnetz.toml" ]; then
    init_node
fi
exec praxisnetz "$@"
