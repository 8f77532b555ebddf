#!/usr/bin/env bash
# Debian packages, installed only when missing: `runtime` (what the service needs), `test` (plus what the
# tests need: redis-server, promtool from prometheus, chromium for the dashboard's browser test, nginx,
# docker-compose to validate the compose file, the postgresql server), or `bench` (plus wrk, the load generator of
# the benchmarks, and Node.js with npm for the Portkey gateway that bench/gateway_peer.py measures against).
set -euo pipefail
profile="${1:-runtime}"
missing=()
# The Azure Speech SDK loads OpenSSL at run time, even for ws://; TLS needs the CA bundle.
ldconfig -p 2>/dev/null | grep -q 'libssl.so.3' || missing+=(libssl3)
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ "$profile" = "bench" ]; then
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  # The Portkey gateway, the peer bench/gateway_peer.py measures the miss path against, runs on Node.js.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  profile=test
fi
if [ "$profile" = "test" ]; then
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  # Fonts: without any, headless pages render text as empty boxes in screenshots.
  [ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
  # nginx checks config/nginx/backend-ai.conf and runs it in front of gunicorn in the slow-client tests.
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  # docker-compose (v1, no daemon needed) validates docker-compose.yml against the compose schema.
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  # A throwaway PostgreSQL for the data tests when none answers on 5432 (scripts/ensure-postgres.sh starts it).
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Another install may hold the dpkg lock for a while: wait for it rather than fail.
  APT=(apt-get -o DPkg::Lock::Timeout=600)
  $SUDO "${APT[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
