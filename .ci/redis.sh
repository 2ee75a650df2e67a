#!/usr/bin/env bash
# Make sure a redis-server binary exists for the Redis tests (they start their own
# private server on a free port of 127.0.0.1, or use REDIS_URL when it is set).
# Installs Debian's redis-server when it is missing; CI runs as root. The package may
# also try to start a system service on 6379: harmless, the tests never use it.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  echo "redis-server present: $(redis-server --version)"
  exit 0
fi

sudo_if_needed=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_if_needed=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo_if_needed[@]}" apt-get update -qq
"${sudo_if_needed[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null
echo "redis-server installed: $(redis-server --version)"
