# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Shared bash helpers for scripts/kafka and scripts/redis. Source it; it defines functions
# only (prefix rc_) and sets nothing else. Everything here talks to 127.0.0.1 only.

rc_prog=${rc_prog:-$(basename "$0")}

rc_log() { printf '%s: %s\n' "$rc_prog" "$*" >&2; }
rc_die() {
  printf '%s: error: %s\n' "$rc_prog" "$*" >&2
  exit 1
}

# Where installed dependencies are cached (see docs/infrastructure.md).
rc_deps_dir() { printf '%s\n' "${RANKCAST_DEPS_DIR:-${HOME:-/root}/.cache/rankcast}"; }

# Where the persistent default instances keep their data (the broker's log, Redis' append-only
# file, the local cluster's logs): kept by `stop`, removed only by `clean`.
rc_data_dir() {
  printf '%s\n' "${RANKCAST_DATA_DIR:-${XDG_DATA_HOME:-${HOME:-/root}/.local/share}/rankcast}"
}

# Seconds since the epoch with milliseconds, for bounded waits and timings.
rc_now_ms() { date +%s%3N; }

# rc_free_ports N: prints N distinct TCP ports that are free on 127.0.0.1 right now. They are
# drawn from 20000-32767, below Linux's ephemeral range (32768-60999), so outgoing client
# connections of load tests cannot take them between this check and the server's bind.
# Another process may still bind one first: callers retry on "address in use".
rc_free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n, out, held = int(sys.argv[1]), [], []
for _ in range(2000):
    if len(out) == n:
        break
    p = random.randrange(20000, 32768)
    if p in out:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    held.append(s)
    out.append(p)
if len(out) != n:
    sys.exit("no free ports found")
print(" ".join(map(str, out)))
EOF
}

# rc_port_in_use PORT: true when something listens on 127.0.0.1:PORT.
rc_port_in_use() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

# rc_pid_alive PID: the process exists and is not a zombie (our servers are orphans, and a
# dead orphan stays a zombie until init gets round to reaping it).
rc_pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}

# rc_pid_in_dir PID DIR: true when PID is alive and its working directory is DIR. Both
# scripts start their server with DIR as its working directory, so a recycled pid (another
# process) never matches and is never signalled.
rc_pid_in_dir() {
  local cwd
  rc_pid_alive "$1" || return 1
  cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
  [ "$cwd" = "$(cd "$2" && pwd -P)" ]
}

# rc_read_pid DIR NAME: prints the pid in DIR/NAME.pid when that process still runs in DIR.
rc_read_pid() {
  local pid
  [ -f "$1/$2.pid" ] || return 1
  pid=$(cat "$1/$2.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  rc_pid_in_dir "$pid" "$1" || return 1
  printf '%s\n' "$pid"
}

# rc_stop_pid PID SECONDS: SIGTERM, wait up to SECONDS for it to exit, then SIGKILL.
rc_stop_pid() {
  local pid=$1 bound=$2 deadline
  rc_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(rc_now_ms) + bound * 1000))
  while rc_pid_alive "$pid"; do
    if [ "$(rc_now_ms)" -ge "$deadline" ]; then
      rc_log "pid $pid still running after ${bound}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
}

# rc_spawn DIR PIDFILE OUTFILE COMMAND...: starts COMMAND in DIR as a daemon (its own
# session, stdin from /dev/null, stdout and stderr to OUTFILE, no other inherited file
# descriptor, so a caller reading our output through a pipe is not held open) and prints
# its pid. The pid file is written by the process that then execs COMMAND (same pid).
rc_spawn() {
  local dir=$1 pidfile=$2 out=$3
  shift 3
  rm -f "$pidfile"
  (
    cd "$dir" || exit 1
    # shellcheck disable=SC2016
    setsid -f bash -c '
      for f in /proc/$$/fd/*; do
        n=${f##*/}
        if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-" 2>/dev/null; fi
      done
      echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
      </dev/null >"$out" 2>&1
  )
  for _ in $(seq 200); do
    [ -s "$pidfile" ] && break
    sleep 0.025
  done
  cat "$pidfile" 2>/dev/null || rc_die "$1 did not start (no pid file $pidfile)"
}

# rc_close_fds: closes every file descriptor above 2 of the current (sub)shell.
rc_close_fds() {
  local f n
  for f in /proc/"$BASHPID"/fd/*; do
    n=${f##*/}
    if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-" 2>/dev/null || true; fi
  done
}

# rc_rss_kib PID: resident set size in KiB.
rc_rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# rc_watch_owner OWNER_PID SERVER_PID STOP_COMMAND...: in the background, detached from the
# caller's stdout (so `$(scripts/x start)` returns), runs STOP_COMMAND once OWNER_PID has
# exited while SERVER_PID still runs. A test passes its own pid so a server never outlives it.
rc_watch_owner() {
  local owner=$1 server=$2
  shift 2
  rc_pid_alive "$owner" || rc_die "--owner $owner: no such process"
  (
    trap '' HUP INT
    rc_close_fds
    while rc_pid_alive "$owner" && rc_pid_alive "$server"; do sleep 1; done
    if rc_pid_alive "$server"; then "$@"; fi
  ) </dev/null >/dev/null 2>&1 &
  disown $! 2>/dev/null || true
}

# rc_assign NAME VALUE: prints NAME=VALUE with VALUE quoted for `eval` (plain for ordinary
# paths and numbers, so `cut -d= -f2-` works on them too).
rc_assign() { printf '%s=%q\n' "$1" "$2"; }

# A run directory is of one of two kinds, written in its marker file DIR/.rankcast-KIND:
#   throwaway   (an empty marker): a test's or a benchmark's; `stop` removes it unless --keep;
#   persistent  (the marker says "persistent"): a default instance; `stop` keeps it and only
#               `clean` removes it.
# Only a directory carrying the marker is ever removed.

# rc_make_run_dir DIR KIND [persistent]: creates (or checks) the run directory and marks it as
# ours; DIR empty makes a new temporary one. A directory keeps the kind it was made with.
# Prints the absolute path.
rc_make_run_dir() {
  local dir=$1 kind=$2 mode=${3:-throwaway}
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/rankcast-$kind.XXXXXX")
  else
    mkdir -p "$dir"
    if [ ! -e "$dir/.rankcast-$kind" ] && [ -n "$(ls -A "$dir")" ]; then
      rc_die "$dir is not empty and was not made by $rc_prog: refusing to use it"
    fi
  fi
  if [ ! -e "$dir/.rankcast-$kind" ]; then
    if [ "$mode" = persistent ]; then
      echo persistent >"$dir/.rankcast-$kind"
    else
      : >"$dir/.rankcast-$kind"
    fi
  fi
  (cd "$dir" && pwd -P)
}

# rc_run_dir_persistent DIR KIND: true when DIR is a persistent run directory.
rc_run_dir_persistent() {
  [ "$(cat "$1/.rankcast-$2" 2>/dev/null)" = persistent ]
}

# rc_remove_run_dir DIR KIND [force]: deletes DIR only when it carries our marker, and a
# persistent one only when forced (`clean`).
rc_remove_run_dir() {
  local dir=$1 kind=$2 force=${3:-}
  [ -d "$dir" ] || return 0
  if [ ! -e "$dir/.rankcast-$kind" ]; then
    rc_log "$dir has no .rankcast-$kind marker: not removing it"
  elif rc_run_dir_persistent "$dir" "$kind" && [ "$force" != force ]; then
    rc_log "kept $dir (persistent data: scripts/$rc_prog clean removes it)"
  else
    rm -rf -- "$dir"
  fi
}

# rc_http_status URL: prints the HTTP status of a GET of URL (000 when nothing answers within
# 2 s); the body goes to the file in $2 when given.
rc_http_status() {
  curl -s -o "${2:-/dev/null}" -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}
