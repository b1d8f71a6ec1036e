#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Smoke test of the real-infrastructure scripts (scripts/kafka, scripts/redis): starts a
# Kafka broker and a Redis server on 127.0.0.1, creates a topic, produces and consumes one
# message with kcat (a plain consumer and a consumer group), does SET/GET on Redis, stops
# both and checks that nothing is left. Prints its measurements (start-up times, broker RSS)
# and a closing "N passed, N failed" line. Bounded: the whole run is killed after 170 s, and
# whatever it started is stopped on any exit.
#
#   tests/infra/smoke.sh        (needs scripts/setup to have run)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${RC_SMOKE_BOUNDED:-}" ]; then
  export RC_SMOKE_BOUNDED=1
  exec timeout -k 10 170 "$0" "$@"
fi

passed=0
failed=0
step=""
KAFKA_DIR="" KAFKA_BOOTSTRAP="" KAFKA_PID=""
REDIS_DIR="" REDIS_URL="" REDIS_PID=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$KAFKA_DIR" ] && [ -d "$KAFKA_DIR" ]; then ./scripts/kafka stop --dir "$KAFKA_DIR" --timeout 10 || true; fi
  if [ -n "$REDIS_DIR" ] && [ -d "$REDIS_DIR" ]; then ./scripts/redis stop --dir "$REDIS_DIR" || true; fi
  if [ $rc != 0 ]; then
    [ -z "$step" ] || { echo "not ok: $step" >&2; failed=$((failed + 1)); }
  fi
  echo "infra smoke: $passed passed, $failed failed"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'echo "infra smoke: killed (time bound reached?)" >&2; exit 124' TERM

now_ms() { date +%s%3N; }
begin() { step=$1; }
ok() {
  echo "ok: $step${1:+ ($1)}"
  passed=$((passed + 1))
  step=""
}
# gone PID: no such process, or a zombie (orphans wait for init to reap them).
gone() {
  if kill -0 "$1" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"; then return 1; fi
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# only_loopback PID: every TCP socket PID listens on is bound to 127.0.0.1.
only_loopback() {
  local addrs
  addrs=$(ss -ltnpH | grep -F "pid=$1," | awk '{print $4}')
  [ -n "$addrs" ] || return 1
  ! grep -vE '^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):[0-9]+$' <<<"$addrs"
}

begin "kafka start (fresh KRaft dir, readiness by metadata request)"
t0=$(now_ms)
env=$(./scripts/kafka start --owner $$)
eval "$env"
kafka_start_ms=$(($(now_ms) - t0))
[ -n "$KAFKA_BOOTSTRAP" ]
[ -d "$KAFKA_DIR" ]
kill -0 "$KAFKA_PID"
ok "$KAFKA_BOOTSTRAP in ${kafka_start_ms} ms"
rss_start=$(rss_kib "$KAFKA_PID")

begin "kafka listens on 127.0.0.1 only"
only_loopback "$KAFKA_PID"
ok

begin "kafka status"
./scripts/kafka status --dir "$KAFKA_DIR" >/dev/null
ok

begin "redis start (no persistence)"
t0=$(now_ms)
env=$(./scripts/redis start --owner $$)
eval "$env"
redis_start_ms=$(($(now_ms) - t0))
[ "$(redis-cli -u "$REDIS_URL" config get save | sed -n 2p)" = "" ]
[ "$(redis-cli -u "$REDIS_URL" config get appendonly | sed -n 2p)" = no ]
only_loopback "$REDIS_PID"
ok "$REDIS_URL in ${redis_start_ms} ms"

topic="rc-smoke"
begin "create topic $topic with 3 partitions"
t0=$(now_ms)
./scripts/kafka create-topic --dir "$KAFKA_DIR" "$topic" 3
[ "$(kcat -b "$KAFKA_BOOTSTRAP" -L -t "$topic" -m 5 | grep -cE '^ +partition [0-9]+, leader 1,')" = 3 ]
# Again: an existing topic is fine.
./scripts/kafka create-topic --dir "$KAFKA_DIR" "$topic" 3 2>/dev/null
ok "$(($(now_ms) - t0)) ms for both"

payload="hello-$$-$RANDOM"
begin "produce one keyed message (idempotent producer, acks=all)"
printf 'user-42:%s\n' "$payload" |
  timeout 30 kcat -b "$KAFKA_BOOTSTRAP" -t "$topic" -P -K: -X enable.idempotence=true -X acks=all
ok

begin "consume it (plain consumer from the beginning)"
got=$(timeout 30 kcat -b "$KAFKA_BOOTSTRAP" -t "$topic" -C -o beginning -c 1 -q -f '%k=%s\n')
[ "$got" = "user-42=$payload" ] || { echo "got: $got" >&2; false; }
ok

begin "consume it (consumer group: __consumer_offsets, join, commit)"
t0=$(now_ms)
got=$(timeout 60 kcat -b "$KAFKA_BOOTSTRAP" -G rc-smoke-group -c 1 -q -f '%k=%s\n' \
  -X auto.offset.reset=earliest "$topic")
[ "$got" = "user-42=$payload" ] || { echo "got: $got" >&2; false; }
ok "$(($(now_ms) - t0)) ms"

begin "redis SET/GET with TTL"
[ "$(redis-cli -u "$REDIS_URL" set rc:smoke "$payload" EX 60)" = OK ]
[ "$(redis-cli -u "$REDIS_URL" get rc:smoke)" = "$payload" ]
ttl=$(redis-cli -u "$REDIS_URL" ttl rc:smoke)
[ "$ttl" -gt 0 ]
[ "$ttl" -le 60 ]
ok

rss_after=$(rss_kib "$KAFKA_PID")

begin "kafka stop (pid gone, dir removed)"
t0=$(now_ms)
./scripts/kafka stop --dir "$KAFKA_DIR"
kafka_stop_ms=$(($(now_ms) - t0))
gone "$KAFKA_PID"
[ ! -e "$KAFKA_DIR" ]
ok "${kafka_stop_ms} ms"

begin "redis stop (pid gone, dir removed)"
./scripts/redis stop --dir "$REDIS_DIR"
gone "$REDIS_PID"
[ ! -e "$REDIS_DIR" ]
ok

begin "status reports a stopped broker"
rc=0
./scripts/kafka status --dir "$KAFKA_DIR" 2>/dev/null || rc=$?
[ $rc = 3 ]
ok

echo "measured: kafka_start_ms=$kafka_start_ms kafka_rss_kib_at_start=$rss_start" \
  "kafka_rss_kib_after_traffic=$rss_after kafka_stop_ms=$kafka_stop_ms redis_start_ms=$redis_start_ms"
