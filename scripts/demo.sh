#!/usr/bin/env bash
# One command for a working demo: two local OpenSSH servers standing for the
# seed's mdwap1p (127.0.0.2:2222) and mypap1d (127.0.0.3:2222), sample files
# for the seed's stub_data_transfer, and the daemon on 127.0.0.1:8000.
# Needs root (it creates the demo's own Unix user and runs sshd). Ctrl-C
# stops what it started, by process id, and nothing else: a test run going
# on beside it (as pinkpage-test) is left alone.
#
# For the test that proves that (tests/api/demo.rs), a few settings may
# come from the environment: PINKPAGE_DEMO_DIR (state, default .demo),
# PINKPAGE_DEMO_SSH_PORT (default 2222), PINKPAGE_DEMO_BINARY (a built
# daemon, instead of building the release one).
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT_DIR"
DEMO=${PINKPAGE_DEMO_DIR:-$ROOT_DIR/.demo}
SSH_PORT=${PINKPAGE_DEMO_SSH_PORT:-2222}
# the demo's own account on its sshd servers: never the test suite's
USER_NAME=pinkpage-demo
BIND=${PINKPAGE_BIND:-127.0.0.1:8000}

if [[ $(id -u) -ne 0 ]]; then
    exec sudo -E bash "$0" "$@"
fi

bash scripts/test-env.sh
mkdir -p "$DEMO"
chmod 0700 "$DEMO"
: >"$DEMO/known_hosts"

# The demo's Unix user, with a password of its own kept in .demo (root
# only) and given to chpasswd and the daemon through stdin and the
# environment, never on a command line.
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$USER_NAME"
    echo "demo: created user $USER_NAME"
fi
if [[ ! -f $DEMO/ssh-password ]]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DEMO/ssh-password")
fi
PASSWORD=$(cat "$DEMO/ssh-password")
printf '%s:%s\n' "$USER_NAME" "$PASSWORD" | chpasswd

# What this script started, by process id: the daemon first (its SSH
# sessions end with it, and their remote shells with them), then the sshd
# listeners. Nothing is killed by user or by name.
daemon_pid=
pids=()
cleanup() {
    trap - EXIT INT TERM
    if [[ -n $daemon_pid ]]; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_sshd() { # name address
    local name=$1 addr=$2 dir=$DEMO/$1
    mkdir -p "$dir"
    [[ -f $dir/host_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
    cat >"$dir/sshd_config" <<CFG
Port $SSH_PORT
ListenAddress $addr
HostKey $dir/host_key
PidFile $dir/sshd.pid
UsePAM yes
# PAM's pam_motd prints the login banner already (Debian's own sshd_config
# says the same); sshd printing it too showed it twice in every shell
PrintMotd no
PasswordAuthentication yes
KbdInteractiveAuthentication yes
PubkeyAuthentication yes
AllowUsers $USER_NAME
PermitRootLogin no
Subsystem sftp internal-sftp
LogLevel INFO
CFG
    /usr/sbin/sshd -t -f "$dir/sshd_config"
    /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
    pids+=($!)
    echo "[$addr]:$SSH_PORT $(cut -d' ' -f1,2 "$dir/host_key.pub")" >>"$DEMO/known_hosts"
    echo "demo: $name is sshd on $addr:$SSH_PORT (log: $dir/sshd.log)"
}
start_sshd mdwap1p 127.0.0.2
start_sshd mypap1d 127.0.0.3

# Sample data for the seed's transfer (both servers share this machine's
# filesystem, so source and destination are plain directories).
install -d -o "$USER_NAME" /nbsftp/myd/myp/snd/postgresql_unload /shbftp/myd/myp/rcv/mock
for i in 1 2 3; do
    printf 'id|name\n%s|demo row %s\n' "$i" "$i" >"/nbsftp/myd/myp/snd/postgresql_unload/table$i.dat"
done
chown "$USER_NAME" /nbsftp/myd/myp/snd/postgresql_unload/*.dat

if [[ -n ${PINKPAGE_DEMO_BINARY:-} ]]; then
    PP=$PINKPAGE_DEMO_BINARY
else
    cargo build --release --locked
    PP=$ROOT_DIR/target/release/pinkpage
fi
export PINKPAGE_DB=$DEMO/pinkpage.db
# the audit key (data/audit.key) too: the account commands below link their
# audit rows with the key the daemon will use
export PINKPAGE_DATA_DIR=$DEMO/data
# A demo operator: created once, its password and a fresh token printed on
# every start (the password is kept in .demo, readable by root only).
DEMO_USER=demo
if [[ ! -f $DEMO/demo-password ]]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DEMO/demo-password")
fi
DEMO_PASSWORD=$(cat "$DEMO/demo-password")
if ! "$PP" user list | grep -q "^$DEMO_USER "; then
    printf '%s\n' "$DEMO_PASSWORD" | "$PP" user add "$DEMO_USER" --role operator --password-stdin
fi
DEMO_TOKEN=$("$PP" token create "$DEMO_USER" --label demo --expires 1d 2>/dev/null | grep '^ppt_')
cat <<INFO

demo: Pink-Page is starting on http://$BIND
  sign in:      user $DEMO_USER, password $DEMO_PASSWORD   (POST /api/v1/auth/login)
  API token:    $DEMO_TOKEN   (Authorization: Bearer ...; Swagger's "Authorize")
  Swagger UI:   http://$BIND/swagger/docs/
  servers:      curl -H "Authorization: Bearer $DEMO_TOKEN" http://$BIND/api/v1/servers
  WebSocket:    websocat -H "Authorization: Bearer $DEMO_TOKEN" ws://$BIND/ws/v1/stub, then send
                {"type":"start_session"}
                {"type":"ssh_command","server":"mdwap1p","command":"uname -a; ls /nbsftp/myd/myp/snd/postgresql_unload"}
  Workflow:     the seed's unload -> confirm -> copy -> load as one run (examples/seed-workflow.toml):
                {"type":"workflow_run","workflow":"unload_copy_load","params":{"table":"orders","parts":3}}
                then {"type":"workflow_confirm","run_id":"<run_id from workflow_started>"}
  Ctrl-C stops the daemon and both sshd servers.

  open http://$BIND/ui/ and sign in as $DEMO_USER with password $DEMO_PASSWORD

INFO
ENV=demo \
HIWARE_ID=$USER_NAME HIWARE_PW=$PASSWORD \
MDWAP1P_IP=127.0.0.2 MDWAP1P_PORT=$SSH_PORT \
MYPAP1D_IP=127.0.0.3 MYPAP1D_PORT=$SSH_PORT \
PINKPAGE_KNOWN_HOSTS=$DEMO/known_hosts \
PINKPAGE_SERVERS_FILE=$ROOT_DIR/examples/seed-workflow.toml \
PINKPAGE_DATA_DIR=$DEMO/data \
PINKPAGE_BIND=$BIND \
    "$PP" serve &
daemon_pid=$!
wait "$daemon_pid"
