#!/bin/sh
# Starts NGINX in a container (docker compose, Kubernetes): first writes the file
# nginx.conf includes for the routing passes' key (nginx/render.py, pass_key_conf:
# the same line) from CROUPIER_PASS_KEY, the key the routers have, then runs nginx
# with this script's arguments. The key never lands in an image or a committed file.
set -eu
key="${CROUPIER_PASS_KEY:-}"
file="${CROUPIER_PASS_KEY_FILE:-/var/run/croupier-pass-key.conf}"
case "$key" in
    "" | *[!A-Za-z0-9_-]*) bad=1 ;;
    *) bad=0 ;;
esac
if [ "$bad" = 1 ] || [ "${#key}" -lt 32 ] || [ "${#key}" -gt 128 ]; then
    echo "CROUPIER_PASS_KEY: must be 32-128 letters, digits, '_' or '-' (the routers' key)" >&2
    exit 1
fi
umask 077
printf 'map $host $croupier_pass_key { default "%s"; }\n' "$key" > "$file"
exec nginx "$@"
