#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:${REDIS_TEST_PORT:-6379}; start a throwaway local one if none does.
set -euo pipefail
port="${REDIS_TEST_PORT:-6379}"
if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
  exit 0
fi
echo "no Redis on 127.0.0.1:$port: starting a local redis-server (no persistence)"
mkdir -p var/redis
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "$PWD/var/redis" --logfile "$PWD/var/redis/redis.log"
for _ in $(seq 1 50); do
  redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && exit 0
  sleep 0.1
done
echo "redis-server did not answer on port $port" >&2
exit 1
