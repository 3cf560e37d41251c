//! The SSH layer (`pinkpage_actors::ssh`) against real OpenSSH servers:
//! authentication, host key policy, connect failures, exec, PTY shells and
//! SFTP. Each test runs its own sshd, known_hosts file and markers.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use pinkpage_actors::server::ServerSpec;
use pinkpage_actors::ssh::{
    self, ExecLimits, HostKeyMode, HostKeyPolicy, PtyRequest, ShellEvent, SshOptions, SshSession,
};
use pinkpage_actors::{AppError, ErrorCode};
use tokio::io::AsyncWriteExt;

use crate::support::fixtures::TempTree;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::{ClosedPort, SshdOptions, SshdServer, TestUser};

/// Generous: PAM delays a refused password by ~2 s, and we try it twice
/// (password, then keyboard-interactive).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Bounds every wait on the server side (log lines, processes, output).
const SETTLE: Duration = Duration::from_secs(10);

fn options(known_hosts: &Path, mode: HostKeyMode) -> SshOptions {
    SshOptions {
        connect_timeout: CONNECT_TIMEOUT,
        host_keys: HostKeyPolicy {
            known_hosts: known_hosts.to_path_buf(),
            mode,
        },
        keepalive: None,
        sessions: Default::default(),
        on_connect: Default::default(),
    }
}

/// A temp dir for the known_hosts file, and the file's path in it.
fn known_hosts_file() -> (TempTree, std::path::PathBuf) {
    let dir = TempTree::private("known-hosts");
    let path = dir.join("known_hosts");
    (dir, path)
}

/// Connects trusting the server through its pinned fingerprint.
async fn connect_pinned(sshd: &SshdServer, mut spec: ServerSpec) -> Result<SshSession, AppError> {
    spec.host_key_fingerprint = Some(sshd.host_key_fingerprint());
    let (_dir, known_hosts) = known_hosts_file();
    ssh::connect(&spec, &options(&known_hosts, HostKeyMode::Strict)).await
}

async fn password_session(sshd: &SshdServer) -> SshSession {
    let spec = sshd.server_spec("test", TestUser::get().password_auth());
    connect_pinned(sshd, spec).await.expect("password connect")
}

fn assert_code(result: Result<SshSession, AppError>, code: ErrorCode) -> AppError {
    match result {
        Ok(session) => panic!("expected {code:?}, got a session {session:?}"),
        Err(e) => {
            assert_eq!(e.code, code, "{e}");
            e
        }
    }
}

async fn whoami(session: &SshSession) -> String {
    let out = session.exec("whoami", ExecLimits::default()).await.unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn password_authentication_succeeds() {
    let sshd = SshdServer::start(SshdOptions::default());

    let session = password_session(&sshd).await;

    assert_eq!(whoami(&session).await, "pinkpage-test\n");
    session.disconnect().await.unwrap();
}

/// The methods of the `userauth-request` lines sshd logs at DEBUG1, in
/// order, repeats in a row counted once (a key is offered, then signed).
fn methods_asked(sshd_log: &str) -> Vec<&str> {
    let mut methods: Vec<&str> = sshd_log
        .lines()
        .filter(|l| l.contains("userauth-request"))
        .filter_map(|l| l.split(" method ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    methods.dedup();
    methods
}

#[tokio::test]
async fn the_none_method_is_asked_first_then_the_password_logs_in() {
    let sshd = SshdServer::start(SshdOptions {
        log_level: "DEBUG1",
        ..SshdOptions::default()
    });

    let session = password_session(&sshd).await;

    assert_eq!(whoami(&session).await, "pinkpage-test\n");
    assert!(sshd.wait_for_log("Accepted password for pinkpage-test", SETTLE));
    assert_eq!(methods_asked(&sshd.log()), ["none", "password"], "{}", sshd.log());
}

#[tokio::test]
async fn the_none_method_is_asked_first_then_the_key_logs_in() {
    let sshd = SshdServer::start(SshdOptions {
        log_level: "DEBUG1",
        ..SshdOptions::default()
    });
    let spec = sshd.server_spec("test", TestUser::get().key_auth());

    let session = connect_pinned(&sshd, spec).await.expect("key connect");

    assert_eq!(whoami(&session).await, "pinkpage-test\n");
    assert!(sshd.wait_for_log("Accepted publickey for pinkpage-test", SETTLE));
    assert_eq!(
        methods_asked(&sshd.log()),
        ["none", "publickey"],
        "{}",
        sshd.log()
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_21000_and_not_echoed() {
    let sshd = SshdServer::start(SshdOptions::default());
    let spec = sshd.server_spec(
        "test",
        pinkpage_actors::server::Auth::Password(pinkpage_actors::Secret::new("not-the-pw-9731")),
    );

    let err = assert_code(connect_pinned(&sshd, spec).await, ErrorCode::SshAuthFailed);

    let detail = err.detail.unwrap_or_default();
    assert!(detail.contains("server 'test'"), "{detail}");
    assert!(!detail.contains("not-the-pw-9731"), "{detail}");
}

#[tokio::test]
async fn key_authentication_succeeds() {
    let sshd = SshdServer::start(SshdOptions::default());
    let spec = sshd.server_spec("test", TestUser::get().key_auth());

    let session = connect_pinned(&sshd, spec).await.expect("key connect");

    assert_eq!(whoami(&session).await, "pinkpage-test\n");
    assert!(sshd.wait_for_log("Accepted publickey for pinkpage-test", SETTLE));
}

#[tokio::test]
async fn keyboard_interactive_succeeds_when_password_authentication_is_off() {
    let sshd = SshdServer::start(SshdOptions {
        password_authentication: false,
        ..SshdOptions::default()
    });

    let session = password_session(&sshd).await;

    assert_eq!(whoami(&session).await, "pinkpage-test\n");
    assert!(sshd.wait_for_log("Accepted keyboard-interactive/pam for pinkpage-test", SETTLE));
}

#[tokio::test]
async fn an_unknown_host_key_under_strict_is_refused_before_any_credential_is_sent() {
    let sshd = SshdServer::start(SshdOptions {
        log_level: "DEBUG1",
        ..SshdOptions::default()
    });
    let (_dir, known_hosts) = known_hosts_file();
    let spec = sshd.server_spec("test", TestUser::get().password_auth());

    let refused = ssh::connect(&spec, &options(&known_hosts, HostKeyMode::Strict)).await;

    let err = assert_code(refused, ErrorCode::SshHostKeyRejected);
    let detail = err.detail.unwrap_or_default();
    assert!(detail.contains("unknown host key"), "{detail}");
    assert!(detail.contains(&sshd.host_key_fingerprint()), "{detail}");
    assert!(!known_hosts.exists());
    // the refused connection is over once sshd logs its end; nothing of it
    // may be an authentication request
    assert!(
        sshd.wait_for_log("Connection closed by 127.0.0.1", SETTLE),
        "{}",
        sshd.log()
    );
    assert!(!sshd.log().contains("userauth-request"), "{}", sshd.log());

    // positive control: an accepted connection does log the request
    let accepted = ssh::connect(&spec, &options(&known_hosts, HostKeyMode::AcceptNew)).await;
    accepted.expect("accept-new connect");
    assert!(sshd.wait_for_log("userauth-request", SETTLE), "{}", sshd.log());
}

#[tokio::test]
async fn accept_new_records_the_key_and_a_later_strict_connect_passes() {
    let sshd = SshdServer::start(SshdOptions::default());
    let (_dir, known_hosts) = known_hosts_file();
    let spec = sshd.server_spec("test", TestUser::get().key_auth());

    let first = ssh::connect(&spec, &options(&known_hosts, HostKeyMode::AcceptNew)).await;
    first.expect("accept-new connect").disconnect().await.unwrap();

    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(recorded.trim_end(), sshd.known_hosts_line());
    let second = ssh::connect(&spec, &options(&known_hosts, HostKeyMode::Strict)).await;
    assert_eq!(whoami(&second.expect("strict connect")).await, "pinkpage-test\n");
}

#[tokio::test]
async fn a_changed_host_key_is_refused_under_both_policies() {
    let mut sshd = SshdServer::start(SshdOptions::default());
    let (_dir, known_hosts) = known_hosts_file();
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let spec = sshd.server_spec("test", TestUser::get().password_auth());

    sshd.restart_with_new_host_key();

    for mode in [HostKeyMode::Strict, HostKeyMode::AcceptNew] {
        let err = assert_code(
            ssh::connect(&spec, &options(&known_hosts, mode)).await,
            ErrorCode::SshHostKeyRejected,
        );
        let detail = err.detail.unwrap_or_default();
        assert!(detail.contains("CHANGED"), "{mode:?}: {detail}");
        assert!(detail.contains("known_hosts:1"), "{mode:?}: {detail}");
        assert!(
            detail.contains(&sshd.host_key_fingerprint()),
            "{mode:?}: {detail}"
        );
    }
    let lines = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(lines.lines().count(), 1, "the changed key must not be recorded");
}

#[tokio::test]
async fn a_matching_pinned_fingerprint_passes_without_known_hosts() {
    let sshd = SshdServer::start(SshdOptions::default());
    let spec = sshd.server_spec("test", TestUser::get().key_auth());

    let session = connect_pinned(&sshd, spec).await;

    assert_eq!(whoami(&session.expect("pinned connect")).await, "pinkpage-test\n");
}

#[tokio::test]
async fn a_wrong_pinned_fingerprint_is_refused_even_if_known_hosts_trusts_the_key() {
    let sshd = SshdServer::start(SshdOptions::default());
    let (_dir, known_hosts) = known_hosts_file();
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let mut spec = sshd.server_spec("test", TestUser::get().key_auth());
    spec.host_key_fingerprint = Some("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());

    let refused = ssh::connect(&spec, &options(&known_hosts, HostKeyMode::AcceptNew)).await;

    let err = assert_code(refused, ErrorCode::SshHostKeyRejected);
    assert!(err.detail.unwrap_or_default().contains("pinned fingerprint"));
}

#[tokio::test]
async fn a_closed_port_fails_with_20000() {
    let (_dir, known_hosts) = known_hosts_file();
    let user = TestUser::get();
    let closed = ClosedPort::new();
    let spec = user.server_spec("closed", closed.port(), user.password_auth());

    let result = ssh::connect(&spec, &options(&known_hosts, HostKeyMode::Strict)).await;

    let err = assert_code(result, ErrorCode::SshConnectionFailed);
    assert!(err.detail.unwrap_or_default().contains("server 'closed'"));
}

#[tokio::test]
async fn a_listener_that_never_speaks_times_out_with_20001() {
    // the kernel completes the TCP handshake into the backlog; nobody
    // ever accepts or writes
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let (_dir, known_hosts) = known_hosts_file();
    let user = TestUser::get();
    let port = silent.local_addr().unwrap().port();
    let spec = user.server_spec("silent", port, user.password_auth());
    let opts = SshOptions {
        connect_timeout: Duration::from_millis(500),
        ..options(&known_hosts, HostKeyMode::Strict)
    };

    let result = ssh::connect(&spec, &opts).await;

    assert_code(result, ErrorCode::SshConnectionTimeout);
}

#[tokio::test]
async fn exec_keeps_stdout_and_stderr_apart_and_reports_the_exit_status() {
    let sshd = SshdServer::start(SshdOptions::default());
    let session = password_session(&sshd).await;

    let out = session
        .exec("echo out; echo err >&2; exit 3", ExecLimits::default())
        .await
        .unwrap();

    assert_eq!(out.exit_status, Some(3));
    assert_eq!(out.exit_signal, None);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert!(!out.stdout_truncated && !out.stderr_truncated);
}

#[tokio::test]
async fn exec_output_over_the_cap_is_truncated_and_flagged() {
    let sshd = SshdServer::start(SshdOptions::default());
    let session = password_session(&sshd).await;
    let limits = ExecLimits {
        max_stdout: 1000,
        max_stderr: 1000,
        timeout: None,
    };

    // 4 MB: far past the cap and past russh's channel queue, so the
    // discarded part must really be drained
    let out = session
        .exec("head -c 4000000 /dev/zero; echo done >&2", limits)
        .await
        .unwrap();

    assert_eq!(out.exit_status, Some(0));
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout_truncated);
    assert_eq!(out.stderr, b"done\n");
    assert!(!out.stderr_truncated);
    // the connection still works after the flood
    assert_eq!(whoami(&session).await, "pinkpage-test\n");
}

#[tokio::test]
async fn an_exec_past_its_timeout_is_ended_on_the_server_with_22001() {
    let sshd = SshdServer::start(SshdOptions::default());
    let session = password_session(&sshd).await;
    let marker = "sleep 1234.5";
    let limits = ExecLimits {
        timeout: Some(Duration::from_secs(2)),
        ..ExecLimits::default()
    };

    // watch the command appear while exec waits, so the final check can fail
    let (result, sleeper) = tokio::join!(session.exec(marker, limits), RemoteProcess::started(marker));

    let err = result.unwrap_err();
    assert_eq!(err.code, ErrorCode::SshCommandTimeout, "{err}");
    assert!(err.detail.unwrap_or_default().contains("ended it with TERM"));
    sleeper.ended("it survived the timeout").await;
}

#[tokio::test]
async fn a_pty_shell_runs_what_is_typed_into_it() {
    let sshd = SshdServer::start(SshdOptions::default());
    let session = password_session(&sshd).await;
    let pty = PtyRequest {
        term: "xterm".into(),
        cols: 80,
        rows: 24,
    };
    let shell = session.open_shell(pty).await.unwrap();
    let (input, mut output) = shell.into_parts();

    input.resize(100, 30).await.unwrap();
    // the shell computes the marker, so the tty echo alone cannot match
    input
        .write(&b"echo pty-$((6*7))-$(tput cols)\n"[..])
        .await
        .unwrap();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(SETTLE, async {
        while let Some(event) = output.next_event().await {
            if let ShellEvent::Output(data) = event {
                seen.extend_from_slice(&data);
                if String::from_utf8_lossy(&seen).contains("pty-42-100") {
                    return true;
                }
            }
        }
        false
    })
    .await;

    assert_eq!(found, Ok(true), "{}", String::from_utf8_lossy(&seen));
    input.write(&b"exit 7\n"[..]).await.unwrap();
    let mut events = Vec::new();
    let _ = tokio::time::timeout(SETTLE, async {
        while let Some(event) = output.next_event().await {
            if !matches!(event, ShellEvent::Output(_)) {
                events.push(event);
            }
        }
    })
    .await;
    assert!(events.contains(&ShellEvent::ExitStatus(7)), "{events:?}");
    assert_eq!(events.last(), Some(&ShellEvent::Closed));
}

#[tokio::test]
async fn sftp_writes_and_reads_a_file_in_the_home_directory() {
    let sshd = SshdServer::start(SshdOptions::default());
    let session = password_session(&sshd).await;
    let sftp = session.sftp().await.unwrap();
    let name = format!("pp-sftp-{}.txt", sshd.port());
    let content = b"pink page\nsecond line\n".repeat(1000);

    let mut file = sftp.create(name.as_str()).await.unwrap();
    file.write_all(&content).await.unwrap();
    file.shutdown().await.unwrap();
    let read_back = sftp.read(name.as_str()).await.unwrap();

    assert_eq!(read_back, content);
    let home = sftp.canonicalize(".").await.unwrap();
    assert_eq!(home, "/home/pinkpage-test");
    sftp.remove_file(name.as_str()).await.unwrap();
}

#[test]
fn a_server_spec_does_not_print_its_password() {
    let user = TestUser::get();
    let spec = user.server_spec("x", 22, user.password_auth());

    let printed = format!("{spec:?}");

    assert!(!printed.contains(user.password.expose()), "{printed}");
    assert!(printed.contains("redacted"), "{printed}");
}

#[tokio::test]
async fn a_command_that_ignores_term_is_killed_after_the_grace() {
    let sshd = SshdServer::start(SshdOptions::default());
    let session = password_session(&sshd).await;
    let marker = "sleep 2345.5";
    let limits = ExecLimits {
        timeout: Some(Duration::from_secs(1)),
        ..ExecLimits::default()
    };

    // an ignored signal stays ignored across exec, so sleep ignores TERM too
    let command = format!("trap '' TERM; {marker}; true");
    let (result, sleeper) = tokio::join!(session.exec(&command, limits), RemoteProcess::started(marker));

    let err = result.unwrap_err();
    assert_eq!(err.code, ErrorCode::SshCommandTimeout, "{err}");
    assert!(err.detail.unwrap_or_default().contains("ended it with KILL"));
    sleeper.ended("it survived KILL").await;
}
