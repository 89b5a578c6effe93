#!/usr/bin/env bash
# Set up what Croupier needs on this machine: nginx and redis-server from the
# system's packages when missing (and chromium for the browser tests, promtool
# for the alerting rules' tests), then a virtual environment with the project
# and its test tools.
#   bash scripts/setup.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)  # kubectl kustomize, for the k8s tests
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool, for the alerting rules' tests
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating virtual environment $venv"
    python3 -m venv "$venv"
fi
echo "setup: installing Python packages into $venv"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q -e ".[test]"
echo "setup: done"
