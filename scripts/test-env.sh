#!/usr/bin/env bash
# Prepares (or tears down) what the integration tests need to run real sshd
# servers on loopback: OpenSSH, the privilege-separation directory, the test
# user with a password, an authorized client key and a login profile that
# exports PINKPAGE_PROFILE_MARK (shell mode reads it, exec mode does not), a
# second user whose login shell is tcsh (shell mode refuses it), and
# headless Chromium with chromedriver for the console's browser tests.
#
#   scripts/test-env.sh          set up (idempotent; run as root)
#   scripts/test-env.sh stop     kill the test user's processes and any
#                                sshd started by the test harness
#
# The password comes from $PINKPAGE_TEST_PASSWORD (default pinkpage-test-pw)
# and is fed to chpasswd on stdin, never on a command line. schemathesis
# (pinned) checks the daemon against its own OpenAPI document
# (tests/api/openapi_contract.rs); webssh (pinned) is the peer of the peer
# benchmark (tests/api/bench/peer.rs). promtool, from Debian's prometheus
# package, checks the shipped alert rules where the package installs; its
# server is stopped and disabled.
set -euo pipefail

TEST_USER=pinkpage-test
# shell mode (command_mode = "shell") needs a POSIX login shell; this user
# has tcsh, to see it refused
TCSH_USER=pinkpage-tcsh
# The OpenAPI contract test runs this exact version: a newer one may add
# checks, which is a deliberate upgrade, not a surprise in CI.
SCHEMATHESIS_VERSION=4.32.5
# the recordings tests replay each .cast file with the real player's reader
ASCIINEMA_VERSION=2.4.0
# the peer benchmark (tests/api/bench/peer.rs) runs webssh beside the
# daemon, as `python3 -m webssh.main` (what its `wssh` script runs)
WEBSSH_VERSION=1.6.3
# the PostgreSQL store's tests (issue 30): Debian's server, a cluster of the
# tests' own on loopback (never the packaged "main" cluster), owned by the
# postgres user, which PostgreSQL requires (it refuses to run as root)
PG_PORT=${PINKPAGE_TEST_PG_PORT:-55432}
PG_DIR=/var/lib/pinkpage-test/postgres
TEST_HOME=/home/$TEST_USER
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_DIR=$ROOT_DIR/.test-env
CLIENT_KEY=$ENV_DIR/id_ed25519

say() { printf 'test-env: %s\n' "$*"; }

# Whether pip has package $1 at version $2. grep reads all of pip's output
# (no -q): pip writes `show` a line at a time, and a grep that quit at the
# match made its later writes fail, which pipefail turned into "not
# installed" (and a reinstall) about half the time.
pip_has() {
    python3 -m pip show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null
}

require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "test-env: must run as root (it creates a user and runs sshd)" >&2
        exit 1
    fi
}

# Harness sshd processes are recognised by their config file living in a
# temporary directory named pinkpage-sshd-*; the system sshd is left alone.
harness_sshd_pids() {
    local pid cmd
    for pid in $(pgrep -x sshd || true); do
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
        if [[ $cmd == *pinkpage-sshd-* ]]; then
            echo "$pid"
        fi
    done
}

stop() {
    require_root
    local pids
    pids=$(harness_sshd_pids)
    if [[ -n $pids ]]; then
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        say "killed harness sshd: $(echo $pids)"
    else
        say "no harness sshd running"
    fi
    local user
    for user in "$TEST_USER" "$TCSH_USER"; do
        if id "$user" >/dev/null 2>&1 && pgrep -u "$user" >/dev/null; then
            pkill -KILL -u "$user" || true
            say "killed every process of $user"
        else
            say "no process of $user running"
        fi
    done
}

# The prometheus package starts its server (systemd, or its init script
# where systemd is absent) unless policy-rc.d forbids it, and enables it
# at boot. Only promtool is wanted: stop the server and disable it.
stop_packaged_prometheus() {
    systemctl disable --now prometheus 2>/dev/null || true
    if [[ -x /etc/init.d/prometheus ]]; then
        /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
    # whatever is left running as the package's own user is its server
    local pids
    pids=$(pgrep -x -u prometheus prometheus 2>/dev/null || true)
    if [[ -n $pids ]]; then
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
        say "stopped the packaged prometheus server: $(echo $pids)"
    fi
    say "the packaged prometheus server is stopped and disabled"
}

pg_bin() {
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [[ -x $bin/initdb ]] && { echo "$bin"; return 0; }
    done
    return 1
}

# A PostgreSQL cluster for the tests: trust on loopback only, no fsync (a
# test database is thrown away; never do this in production), and enough
# connections for three instances' pools in parallel tests. Tests create
# and drop a database each (tests/api/support/postgres.rs).
setup_postgres() {
    local bin
    if ! bin=$(pg_bin); then
        say "installing postgresql"
        apt-get update
        # the tests' cluster is made below; the package's own is not needed
        install -d /etc/postgresql-common
        if [[ ! -f /etc/postgresql-common/createcluster.conf ]] || \
            ! grep -q '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf; then
            echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
        bin=$(pg_bin)
    fi
    say "postgresql present ($("$bin/postgres" --version))"
    install -d -m 0755 /var/lib/pinkpage-test
    install -d -m 0700 -o postgres -g postgres "$PG_DIR"
    if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
        runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 >/dev/null
        cat >>"$PG_DIR/data/postgresql.conf" <<CONF
# scripts/test-env.sh: the tests' own cluster
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 400
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
        say "created the tests' PostgreSQL cluster in $PG_DIR/data"
    fi
    if runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
        say "the tests' PostgreSQL runs on 127.0.0.1:$PG_PORT"
    else
        rm -f "$PG_DIR/data/postmaster.pid"
        runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 start >/dev/null
        say "started the tests' PostgreSQL on 127.0.0.1:$PG_PORT"
    fi
}

setup() {
    require_root
    setup_postgres
    if [[ ! -x /usr/sbin/sshd ]]; then
        say "installing openssh-server"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server
    else
        say "openssh-server present ($(/usr/sbin/sshd -V 2>&1 | head -n1 || true))"
    fi

    # the DIFF tests check that `patch` applies the unified diffs
    if command -v patch >/dev/null 2>&1; then
        say "patch present"
    else
        say "installing patch"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y patch
    fi

    # the console's browser tests (tests/api/console/) drive headless
    # Chromium through chromedriver; the CJK fonts render Korean output
    local browser_pkgs=()
    command -v chromium >/dev/null 2>&1 || browser_pkgs+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || browser_pkgs+=(chromium-driver)
    dpkg -s fonts-noto-cjk >/dev/null 2>&1 || browser_pkgs+=(fonts-noto-cjk)
    if [[ ${#browser_pkgs[@]} -gt 0 ]]; then
        say "installing ${browser_pkgs[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${browser_pkgs[@]}"
    else
        say "chromium, chromium-driver and fonts-noto-cjk present"
    fi

    # the OpenAPI contract test runs the schemathesis CLI against the daemon
    if pip_has schemathesis "$SCHEMATHESIS_VERSION"; then
        say "schemathesis $SCHEMATHESIS_VERSION present"
    else
        say "installing schemathesis $SCHEMATHESIS_VERSION"
        python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    # `asciinema cat` reads back every recording the tests make
    if pip_has asciinema "$ASCIINEMA_VERSION" \
        && command -v asciinema >/dev/null 2>&1; then
        say "asciinema $ASCIINEMA_VERSION present"
    else
        say "installing asciinema $ASCIINEMA_VERSION"
        python3 -m pip install --quiet --disable-pip-version-check "asciinema==$ASCIINEMA_VERSION"
        command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    fi

    # the peer benchmark starts webssh with the interpreter `python3` names
    # (tests/api/support/webssh.rs), so it goes where that python3 looks
    if pip_has webssh "$WEBSSH_VERSION"; then
        say "webssh $WEBSSH_VERSION present"
    else
        say "installing webssh $WEBSSH_VERSION"
        python3 -m pip install --quiet --disable-pip-version-check "webssh==$WEBSSH_VERSION"
        command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    fi

    # promtool checks the shipped alert rules (docs/monitoring/,
    # tests/api/metrics_docs.rs). Debian has it only in the prometheus
    # package, whose server is not wanted here: it is stopped and disabled
    # right after the install. Optional: without it that check is skipped.
    if command -v promtool >/dev/null 2>&1; then
        say "promtool present ($(promtool --version 2>&1 | head -n1 || true))"
    else
        say "installing prometheus (for promtool only)"
        apt-get update || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus || true
        # also after a failed install: its postinst may have started it
        stop_packaged_prometheus
        if command -v promtool >/dev/null 2>&1; then
            say "promtool installed ($(promtool --version 2>&1 | head -n1 || true))"
        else
            say "WARNING: promtool could not be installed: the promtool checks of the alert rules will be skipped"
        fi
    fi

    # shell mode's refusal of a non-POSIX login shell is tested with tcsh
    if [[ -x /usr/bin/tcsh ]]; then
        say "tcsh present"
    else
        say "installing tcsh"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y tcsh
    fi
    # the memory benchmark measures mimalloc and jemalloc in place of
    # glibc's malloc (LD_PRELOAD; tests/api/bench/memory.rs); without them
    # it reports them as not installed
    if dpkg -s libmimalloc2.0 libjemalloc2 >/dev/null 2>&1; then
        say "libmimalloc2.0 and libjemalloc2 present"
    else
        say "installing libmimalloc2.0 and libjemalloc2"
        apt-get update || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y libmimalloc2.0 libjemalloc2 || \
            say "WARNING: mimalloc or jemalloc could not be installed: the memory benchmark leaves them out"
    fi
    # the store_faults tests put the database on a small tmpfs of their own
    # and fill it (tests/api/support/tmpfs.rs): mount/umount, df, and a
    # kernel that lets root mount (a container needs CAP_SYS_ADMIN). As
    # root those tests fail rather than skip, so say here what is missing.
    if command -v mount >/dev/null 2>&1 && command -v umount >/dev/null 2>&1; then
        say "mount present"
    else
        say "installing mount"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y mount
    fi
    local probe
    probe=$(mktemp -d)
    if mount -t tmpfs -o size=1m tmpfs "$probe" 2>/dev/null; then
        umount "$probe"
        say "tmpfs mounts work"
    else
        say "WARNING: root cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): the store_faults tests will fail"
    fi
    rmdir "$probe"

    install -d -m 0755 /run/sshd
    say "privilege separation dir /run/sshd ready"

    if id "$TEST_USER" >/dev/null 2>&1; then
        say "user $TEST_USER exists"
    else
        useradd --create-home --home-dir "$TEST_HOME" --shell /bin/bash "$TEST_USER"
        say "created user $TEST_USER"
    fi
    printf '%s:%s\n' "$TEST_USER" "${PINKPAGE_TEST_PASSWORD:-pinkpage-test-pw}" | chpasswd
    say "set the password of $TEST_USER (from PINKPAGE_TEST_PASSWORD or the default)"

    # bash reads ~/.profile as a login shell (shell mode), not under exec
    local profile=$TEST_HOME/.profile mark='export PINKPAGE_PROFILE_MARK=loaded'
    if [[ -f $TEST_HOME/.bash_profile || -f $TEST_HOME/.bash_login ]]; then
        echo "test-env: $TEST_HOME/.bash_profile or .bash_login would hide ~/.profile from bash" >&2
        exit 1
    fi
    if [[ -f $profile ]] && grep -qxF "$mark" "$profile"; then
        say "$profile exports PINKPAGE_PROFILE_MARK"
    else
        printf '\n# the shell-mode tests look for this (scripts/test-env.sh)\n%s\n' "$mark" >>"$profile"
        chown "$TEST_USER:$TEST_USER" "$profile"
        say "$profile now exports PINKPAGE_PROFILE_MARK"
    fi

    if id "$TCSH_USER" >/dev/null 2>&1; then
        usermod --shell /usr/bin/tcsh "$TCSH_USER"
        say "user $TCSH_USER exists (login shell tcsh)"
    else
        useradd --create-home --shell /usr/bin/tcsh "$TCSH_USER"
        say "created user $TCSH_USER (login shell tcsh)"
    fi
    printf '%s:%s\n' "$TCSH_USER" "${PINKPAGE_TEST_PASSWORD:-pinkpage-test-pw}" | chpasswd
    say "set the password of $TCSH_USER (the same as $TEST_USER's)"

    install -d -m 0700 "$ENV_DIR"
    if [[ -f $CLIENT_KEY && -f $CLIENT_KEY.pub ]]; then
        say "client key $CLIENT_KEY exists"
    else
        rm -f "$CLIENT_KEY" "$CLIENT_KEY.pub"
        ssh-keygen -q -t ed25519 -N '' -C pinkpage-test-client -f "$CLIENT_KEY"
        say "generated client key $CLIENT_KEY"
    fi

    install -d -m 0700 -o "$TEST_USER" -g "$TEST_USER" "$TEST_HOME/.ssh"
    # Append, never replace: several checkouts of the project on one machine
    # each have their own client key, and must not lock each other out.
    local auth=$TEST_HOME/.ssh/authorized_keys
    touch "$auth"
    if grep -qxF "$(cat "$CLIENT_KEY.pub")" "$auth"; then
        say "$CLIENT_KEY.pub already authorized for $TEST_USER"
    else
        cat "$CLIENT_KEY.pub" >>"$auth"
        say "authorized $CLIENT_KEY.pub for $TEST_USER"
    fi
    chown "$TEST_USER:$TEST_USER" "$auth"
    chmod 0600 "$auth"
    chmod 0755 "$TEST_HOME"
}

case "${1:-setup}" in
    setup) setup ;;
    stop) stop ;;
    *)
        echo "usage: $0 [setup|stop]" >&2
        exit 2
        ;;
esac
