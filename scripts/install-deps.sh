#!/usr/bin/env bash
# Install the Debian packages chaosdrill uses, only those missing (idempotent; no network when all are present).
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail
packages=(postgresql-15 redis-server pgbackrest stunnel4 nftables iptables chromium poppler-utils procps "$@")
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then packages+=(python3-venv); fi
# Node.js and npm for the Toxiproxy client of another language (tests/integration/toxiproxy/test_node_client.py);
# by command, not package name: a Node.js from elsewhere (e.g. NodeSource, which bundles npm) is kept.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}"
# Servers must not start on install (no systemd here; on a laptop this keeps 5432/6379 free) and
# PostgreSQL must not create a cluster of its own: chaosdrill makes throwaway ones on free ports.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo 'create_main_cluster = false' | $SUDO tee /etc/postgresql-common/createcluster.d/00-chaosdrill.conf >/dev/null
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
