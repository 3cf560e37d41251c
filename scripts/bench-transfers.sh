#!/usr/bin/env bash
# Transfer relay throughput: Pink-Page's scp_transfer (SFTP relayed by the
# daemon) side by side with OpenSSH `scp -3`, between the same two private
# sshd servers on loopback, in one run.
#
# Usage (as root, after scripts/test-env.sh):
#   scripts/bench-transfers.sh [LARGE_MIB=1024] [SMALL_FILES=1000] [SMALL_BYTES=4096] [RUNS=3]
# TOOLS="pinkpage scp3 scp3-aes" (the default) picks the tools, e.g.
# TOOLS=pinkpage to profile the daemon's runs alone; BENCH_DAEMON_LOG=FILE
# keeps the daemon's log there; BENCH_DIR (default /tmp) is where the
# files are, e.g. /dev/shm to take the file system's own cost of creating
# and deleting 1,000 files a run out of the figures.
# Runs $PINKPAGE_BIN, or target/release/pinkpage (built if missing). The
# suite runs it with a tiny workload and the test profile's binary
# (tests/api/bench/transfers.rs).
# Prints one line per tool and workload: median seconds, MB/s (10^6 B/s)
# and the median CPU seconds the machine was busy during a run (all cores;
# with 2 cores, a run whose CPU seconds are twice its seconds used them
# both: run it on an otherwise idle machine).
# The daemon gets an operator account and an API token of its own, in its
# own database; the token goes to the WebSocket client by environment,
# never on a command line or in a log.
set -euo pipefail
# a failure inside $(...) stops the script too
shopt -s inherit_errexit

LARGE_MIB=${1:-1024}
SMALL_FILES=${2:-1000}
SMALL_BYTES=${3:-4096}
RUNS=${4:-3}
TOOLS=${TOOLS:-pinkpage scp3 scp3-aes}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEY=$ROOT/.test-env/id_ed25519
TUSER=pinkpage-test
if [[ -n ${PINKPAGE_BIN:-} ]]; then
  BIN=$PINKPAGE_BIN
  [[ -x $BIN ]] || { echo "PINKPAGE_BIN=$BIN is not an executable" >&2; exit 1; }
else
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/pinkpage
  [[ -x $BIN ]] || (cd "$ROOT" && cargo build --release --bin pinkpage)
fi
[ -r "$KEY" ] || { echo "missing $KEY: run scripts/test-env.sh" >&2; exit 1; }

W=$(mktemp -d "${BENCH_DIR:-/tmp}/pinkpage-bench-XXXXXX")
chmod 755 "$W"
PIDS=()
cleanup() {
  # the daemon's log, kept where BENCH_DAEMON_LOG says (for profiling)
  if [[ -n ${BENCH_DAEMON_LOG:-} && -f $W/daemon.log ]]; then cp "$W/daemon.log" "$BENCH_DAEMON_LOG"; fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # gone before their files are: nothing outlives the script
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One private sshd, as the test harness runs them, on a free port (another
# process may take the port between our probe and sshd's bind: a few
# attempts); sets SSHD_PORT.
start_sshd() {
  local name=$1 d=$W/$1 port pid _
  mkdir -p "$d"
  ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey"
  install -d -m 0755 /run/sshd
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    cat > "$d/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $d/hostkey
PidFile $d/sshd.pid
UsePAM yes
PrintMotd no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
AllowUsers $TUSER
PermitRootLogin no
Subsystem sftp internal-sftp
CFG
    /usr/sbin/sshd -D -e -f "$d/sshd_config" > /dev/null 2> "$d/log" &
    pid=$!
    for _ in $(seq 200); do
      grep -qs 'Server listening' "$d/log" && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    if grep -qs 'Server listening' "$d/log"; then
      PIDS+=("$pid")
      SSHD_PORT=$port
      SSHD_PID=$pid
      echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/hostkey.pub")" >> "$W/known_hosts"
      return
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "sshd $name did not start:" >&2; cat "$d/log" >&2; exit 1
}

start_sshd alpha; PA=$SSHD_PORT; SA=$SSHD_PID
start_sshd beta; PB=$SSHD_PORT; SB=$SSHD_PID

echo "preparing data: ${LARGE_MIB} MiB file, ${SMALL_FILES} x ${SMALL_BYTES} B files" >&2
install -d -m 0755 -o "$TUSER" "$W/src" "$W/src/small" "$W/dst"
head -c "$((LARGE_MIB << 20))" /dev/urandom > "$W/src/large.bin"
for i in $(seq -w 1 "$SMALL_FILES"); do head -c "$SMALL_BYTES" /dev/urandom > "$W/src/small/f$i.dat"; done
chmod -R a+r "$W/src"

cat > "$W/servers.toml" <<TOML
[[servers]]
name = "alpha"
host = "127.0.0.1"
port = $PA
username = "$TUSER"
key_file = "$KEY"

[[servers]]
name = "beta"
host = "127.0.0.1"
port = $PB
username = "$TUSER"
key_file = "$KEY"

[[transfers]]
name = "large"
source_server = "alpha"
source_glob = "$W/src/large.bin"
destination_server = "beta"
destination_dir = "$W/dst"

[[transfers]]
name = "small"
source_server = "alpha"
source_glob = "$W/src/small/*.dat"
destination_server = "beta"
destination_dir = "$W/dst"
TOML

# The daemon and its account commands run in $W with only the variables
# they are given: no .env file or stray PINKPAGE_* setting of the caller
# changes what is measured.
daemon_env=(env -i "PATH=$PATH" "PINKPAGE_DB=$W/pinkpage.db")
# An operator account (its password random, read from stdin and dropped)
# and an API token for it: the WebSocket client's credential.
if ! head -c 18 /dev/urandom | base64 | (cd "$W" && "${daemon_env[@]}" "$BIN" user add bench \
    --role operator --password-stdin) > "$W/cli.log" 2>&1; then
  echo "pinkpage user add failed:" >&2; cat "$W/cli.log" >&2; exit 1
fi
if ! TOKEN=$(cd "$W" && "${daemon_env[@]}" "$BIN" token create bench --label bench-transfers --expires 1d 2> "$W/cli.log"); then
  echo "pinkpage token create failed:" >&2; cat "$W/cli.log" >&2; exit 1
fi

# on a port of its own choosing (no race for it), read from its JSON
# `listening` line
(cd "$W" && exec "${daemon_env[@]}" PINKPAGE_BIND=127.0.0.1:0 PINKPAGE_DATA_DIR="$W/data" \
  PINKPAGE_SERVERS_FILE="$W/servers.toml" PINKPAGE_KNOWN_HOSTS="$W/known_hosts" \
  PINKPAGE_LOG_FORMAT=json RUST_LOG=warn,pinkpage::startup=info "$BIN") > "$W/daemon.log" 2>&1 &
DPID=$!
PIDS+=("$DPID")
listening_port() {
  python3 - "$W/daemon.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if isinstance(v, dict) and v.get("message") == "listening":
        print(v["fields"]["addr"].rsplit(":", 1)[1])
        break
PY
}
DPORT=
for _ in $(seq 300); do
  DPORT=$(listening_port)
  [[ -n $DPORT ]] && break
  kill -0 "$DPID" 2>/dev/null || break
  sleep 0.1
done
[[ -n $DPORT ]] || { echo "the daemon did not start:" >&2; cat "$W/daemon.log" >&2; exit 1; }

SSH_OPTS=(-i "$KEY" -o UserKnownHostsFile="$W/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes)
reset_dst() { find "$W/dst" -mindepth 1 -delete; }

# prints seconds (bash's `time`, wall clock) of one `scp -3` of $1, with
# more scp options after it
scp3() {
  local src=$1 TIMEFORMAT=%R
  shift
  { time scp -q -3 "$@" "${SSH_OPTS[@]}" \
      "scp://$TUSER@127.0.0.1:$PA/$src" "scp://$TUSER@127.0.0.1:$PB/$W/dst/" > /dev/null 2> "$W/scp.err"; } 2>&1 \
    || { echo "scp -3 $* failed:" >&2; cat "$W/scp.err" >&2; exit 1; }
}

# CPU ticks the whole machine has been busy so far (every core; from
# /proc/stat): a session's processes are not all reaped by its listener,
# so per-process counts miss some of the servers' work
busy_ticks() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# waits (at most 5 s) until both sshd servers have reaped their sessions
sessions_reaped() {
  local _
  for _ in $(seq 100); do
    pgrep -P "$SA" > /dev/null || pgrep -P "$SB" > /dev/null || return 0
    sleep 0.05
  done
}

# prints "seconds cpu_seconds" for one run of $1 (workload) with tool $2:
# the wall clock as described below, and the CPU time the machine spent
# meanwhile (both servers' sessions, the daemon or scp and its ssh
# clients, the WebSocket client, the kernel's loopback: on an otherwise
# idle machine, the run's cost)
run_once() {
  local workload=$1 tool=$2 src secs before
  reset_dst
  sessions_reaped
  before=$(busy_ticks)
  if [ "$workload" = large ]; then src=$W/src/large.bin; else src="$W/src/small/*.dat"; fi
  case $tool in
    pinkpage) secs=$(PINKPAGE_TOKEN=$TOKEN python3 "$ROOT/scripts/ws-transfer.py" "$DPORT" "$workload" | cut -d' ' -f1) ;;
    scp3) secs=$(scp3 "$src") ;;
    scp3-aes) secs=$(scp3 "$src" -c aes128-gcm@openssh.com) ;;
  esac
  # a run that did not copy everything does not count
  local want=1 got
  [ "$workload" = large ] || want=$SMALL_FILES
  got=$(find "$W/dst" -mindepth 1 -type f | wc -l)
  [ "$got" -eq "$want" ] || { echo "$tool $workload: $got of $want files arrived" >&2; exit 1; }
  sessions_reaped
  local ticks=$(($(busy_ticks) - before))
  echo "$secs $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-8s %-10s %8s %10s %6s %s\n' workload tool median_s MB/s cpu_s runs_s
for workload in large small; do
  if [ "$workload" = large ]; then bytes=$((LARGE_MIB << 20)); else bytes=$((SMALL_FILES * SMALL_BYTES)); fi
  declare -A times=() cpus=()
  for r in $(seq "$RUNS"); do
    # interleaved, so drift in machine load hits every tool alike
    for tool in $TOOLS; do
      read -r secs cpu <<< "$(run_once "$workload" "$tool")"
      times[$tool]="${times[$tool]:-} $secs"
      cpus[$tool]="${cpus[$tool]:-} $cpu"
    done
  done
  for tool in $TOOLS; do
    med=$(echo "${times[$tool]}" | tr ' ' '\n' | grep . | median)
    cpu=$(echo "${cpus[$tool]}" | tr ' ' '\n' | grep . | median)
    printf '%-8s %-10s %8s %10s %6s %s\n' "$workload" "$tool" "$med" \
      "$(awk -v b="$bytes" -v s="$med" 'BEGIN { printf "%.1f", b / s / 1e6 }')" "$cpu" "${times[$tool]}"
  done
  unset times cpus
done
