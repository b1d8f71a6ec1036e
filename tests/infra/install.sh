#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs this build into a fresh prefix and uses it from there, as someone who never saw the
# source tree would: `cmake --install` into a temporary prefix; a small C program
# (install_check.c) compiled and linked with `pkg-config --cflags --libs rankcast-client`
# against the installed library, run against the installed server, which must serve the
# installed demo pages and SDK (not the source tree's); the generated systemd unit points at
# the installed binary and passes `systemd-analyze verify`. Then `cpack -G DEB`: the package
# holds the server, the unit, the conffile /etc/rankcast/rankcast.env, the library, header and
# .pc file and the data, depends on the linked libraries' packages, and its extracted tree
# (`dpkg-deb -x`) starts and serves the demo. Ends with "infra install: N passed, N failed".
#
#   tests/infra/install.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: install.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)

if [ -z "${RC_INSTALL_BOUNDED:-}" ]; then
  export RC_INSTALL_BOUNDED=1
  exec timeout -k 10 170 "$0" "$@"
fi

passed=0
failed=0
step=""
work=$(mktemp -d /tmp/rankcast-install.XXXXXX)
server_pid=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ $rc != 0 ] && [ -n "$step" ]; then echo "not ok: $step" >&2; failed=$((failed + 1)); fi
  rm -rf "$work"
  echo "infra install: $passed passed, $failed failed"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'echo "infra install: killed (time bound reached?)" >&2; exit 124' TERM

begin() { step=$1; }
ok() {
  echo "ok: $step${1:+ ($1)}"
  passed=$((passed + 1))
  step=""
}
fail() {
  echo "$*" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server BIN LOG: the server of BIN in --demo mode on a free port; sets $port.
start_server() {
  port=$(free_port)
  (cd "$work" && exec env -i PATH=/usr/bin:/bin "$1" --demo --port "$port" --listen 127.0.0.1) >"$2" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$2" >&2
  fail "the server did not become ready"
}

stop_server() {
  kill "$server_pid"
  wait "$server_pid" || true
  server_pid=""
}

# serves_installed ROOT LOG: the running server serves the demo page, the SDK and msgpack from
# ROOT/share/rankcast, not from the source tree.
serves_installed() {
  local root=$1 log=$2
  grep -q "web_root=\"$root/share/rankcast/web-demo\"" "$log" || fail "web root is not the installed one: $(grep -o 'web_root=[^ ]*' "$log")"
  grep -qi '<html' <<<"$(curl -fsS "http://127.0.0.1:$port/")" || fail "/ is not the demo page"
  grep -q 'export' <<<"$(curl -fsS "http://127.0.0.1:$port/sdk/src/index.js")" || fail "/sdk/src/index.js missing"
  grep -q 'export' <<<"$(curl -fsS "http://127.0.0.1:$port/vendor/msgpack/index.mjs")" ||
    fail "/vendor/msgpack/index.mjs missing"
}

prefix=$work/prefix
begin "cmake --install into a fresh prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
for f in bin/rankcast include/rankcast/client.h lib/librankcast_client.a lib/librankcast_client.so \
  lib/pkgconfig/rankcast-client.pc lib/systemd/system/rankcast.service etc/rankcast/rankcast.env \
  share/rankcast/web-demo/index.html share/rankcast/web-demo/ops.html \
  share/rankcast/web-demo/catalog/demo-catalog.jsonl share/rankcast/web-demo/catalog/ATTRIBUTION.md \
  share/rankcast/sdk/js/src/index.js share/rankcast/sdk/js/index.d.ts share/rankcast/sdk/js/LICENSE \
  share/rankcast/sdk/js/node_modules/@msgpack/msgpack/dist.esm/index.mjs \
  share/rankcast/sdk/js/node_modules/@msgpack/msgpack/LICENSE \
  share/doc/rankcast/LICENSE share/doc/rankcast/NOTICE share/doc/rankcast/THIRD-PARTY.md \
  share/doc/rankcast/docs/openapi.yaml share/doc/rankcast/ops/grafana/rankcast.json \
  share/doc/rankcast/ops/prometheus/alerts.yml; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
ok "$(find "$prefix" -type f | wc -l) files"

begin "the shared library exports the public header's functions only"
exported=$(nm -D --defined-only "$prefix/lib/librankcast_client.so" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' | sort)
declared=$(grep -oE '^[a-z].*[ *]rcc_[a-z0-9_]+\(' "$prefix/include/rankcast/client.h" | grep -oE 'rcc_[a-z0-9_]+\(' | tr -d '(' | sort)
[ "$exported" = "$declared" ] || fail "exported and declared differ: $(diff <(echo "$exported") <(echo "$declared") | grep '^[<>]' | tr '\n' ' ')"
ok "$(wc -l <<<"$exported") functions"

begin "a program builds against the installed client with pkg-config"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
# A sanitizer build's library needs the sanitizer runtimes in the program too.
sanitize=""
if grep -q '^RC_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then sanitize="-fsanitize=address,undefined"; fi
flags=$(pkg-config --cflags --libs rankcast-client)
# shellcheck disable=SC2086 # the flags are words
cc $sanitize -std=c11 -Wall -Wextra -Werror -o "$work/install_check" "$src/tests/infra/install_check.c" $flags
# Not `ldd | grep -q`: under pipefail, grep leaving early makes ldd die of SIGPIPE, and the
# pipeline fail however the match went.
grep -q "$prefix/lib/librankcast_client.so.0" <<<"$(LD_LIBRARY_PATH=$prefix/lib ldd "$work/install_check")" ||
  fail "install_check is not linked to the installed library"
# shellcheck disable=SC2086
cc $sanitize -std=c11 -o "$work/install_check_static" "$src/tests/infra/install_check.c" \
  $(pkg-config --cflags rankcast-client) "$prefix/lib/librankcast_client.a" $(pkg-config --static --libs-only-l rankcast-client | sed 's/-lrankcast_client//')
ok "$flags"

begin "the installed server serves its installed data; the program gets a list from it"
start_server "$prefix/bin/rankcast" "$work/server.log"
serves_installed "$prefix" "$work/server.log"
out=$(LD_LIBRARY_PATH=$prefix/lib "$work/install_check" "ws://127.0.0.1:$port/ws")
grep -q 'items=[1-9]' <<<"$out" || fail "install_check: $out"
"$work/install_check_static" "ws://127.0.0.1:$port/ws" >/dev/null || fail "the statically linked program failed"
stop_server
ok "$out"

begin "the systemd unit names the installed binary and settings, and verifies"
unit=$prefix/lib/systemd/system/rankcast.service
grep -qx "ExecStart=$prefix/bin/rankcast" "$unit" || fail "ExecStart: $(grep ExecStart "$unit")"
grep -qx "EnvironmentFile=-$prefix/etc/rankcast/rankcast.env" "$unit" || fail "EnvironmentFile: $(grep EnvironmentFile "$unit")"
for opt in DynamicUser=yes Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict LimitNOFILE=; do
  grep -q "^$opt" "$unit" || fail "the unit lacks $opt"
done
if command -v systemd-analyze >/dev/null; then
  verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
  [ -z "$verify" ] || fail "systemd-analyze verify: $verify"
  ok "systemd-analyze verify: clean"
else
  ok "systemd-analyze not installed: not verified"
fi

begin "cpack -G DEB: contents, dependencies, conffile"
command -v dpkg-deb >/dev/null || fail "dpkg-deb is missing (Debian's dpkg)"
(cd "$work" && cpack -G DEB -B "$work/pkg" --config "$build/CPackConfig.cmake" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log" >&2; fail "cpack failed"; }
deb=$(ls "$work"/pkg/rankcast_*.deb)
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/rankcast ./usr/lib/systemd/system/rankcast.service ./etc/rankcast/rankcast.env \
  ./usr/include/rankcast/client.h ./usr/lib/pkgconfig/rankcast-client.pc \
  ./usr/lib/librankcast_client.so.0.1.0 ./usr/share/rankcast/web-demo/index.html \
  ./usr/share/rankcast/sdk/js/src/index.js ./usr/share/doc/rankcast/LICENSE \
  ./usr/share/doc/rankcast/THIRD-PARTY.md; do
  grep -qxF "$f" <<<"$contents" || fail "$f is not in the package"
done
grep -q '^\./tmp\|^\./work' <<<"$contents" && fail "the package holds build paths"
depends=$(dpkg-deb -f "$deb" Depends)
for p in libwebsockets17 libwebsockets-evlib-uv libuv1 libmsgpackc2 libjansson4 libhiredis librdkafka1 libssl3; do
  grep -q "$p" <<<"$depends" || fail "Depends lacks $p: $depends"
done
grep -qx /etc/rankcast/rankcast.env <<<"$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" ||
  fail "/etc/rankcast/rankcast.env is not a conffile"
grep -qx "ExecStart=/usr/bin/rankcast" <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/rankcast.service) ||
  fail "the packaged unit does not start /usr/bin/rankcast"
ok "$(wc -l <<<"$contents") entries, $(du -k "$deb" | cut -f1) KiB"

begin "the package's tree (dpkg-deb -x) starts and serves its own data"
dpkg-deb -x "$deb" "$work/root"
start_server "$work/root/usr/bin/rankcast" "$work/deb-server.log"
serves_installed "$work/root/usr" "$work/deb-server.log"
stop_server
ok
