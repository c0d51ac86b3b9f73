#!/usr/bin/env bash
# System packages the tests use: Debian's chromium (browser tests), redis-server (the Redis
# broker path) and PostgreSQL (the scaled-out database path). Installed when missing and when
# we may (root with apt-get); otherwise those tests skip and say why.
set -uo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing ${need[*]} (Debian packages)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "warning: could not install ${need[*]}; the tests that need them will skip" >&2
else
  echo "note: ${need[*]} missing and not installable here (needs root + apt-get); those tests will skip" >&2
fi
exit 0
