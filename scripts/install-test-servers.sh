#!/usr/bin/env bash
# Installs the real servers the integration suites start (etcd, dnsmasq, HAProxy) from Debian's
# packages, when they are missing. Needs root (or sudo). The suites start and stop the servers
# themselves, on 127.0.0.1 and random ports; nothing is left running.
set -euo pipefail
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server etcd-client)
{ command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; } || missing+=(dnsmasq-base)
{ command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; } || missing+=(haproxy)
# --- begin: Chromium for the admin-page browser test (test/integration/telemetry/admin-page.test.ts)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# --- end: Chromium
if [ ${#missing[@]} -eq 0 ]; then
  echo "test servers present: etcd, dnsmasq, haproxy"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "need root to install: ${missing[*]} (the suites that need them will say they were skipped)" >&2
    exit 0
  fi
fi
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The etcd-server package starts a system etcd on the default ports; the suites use their own.
$SUDO systemctl stop etcd >/dev/null 2>&1 || true
$SUDO service etcd stop >/dev/null 2>&1 || true
echo "test servers installed"
