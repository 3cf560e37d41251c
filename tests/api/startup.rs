//! Starting the binary: help, bad settings.

use crate::support::daemon::run_to_exit;

#[test]
fn help_lists_the_settings() {
    let (code, out) = run_to_exit(&["--help"], &[]);
    assert_eq!(code, Some(0));
    for var in [
        "PINKPAGE_BIND",
        "PINKPAGE_HOST_KEY_POLICY",
        "MDWAP1P_IP",
        "RUST_LOG",
    ] {
        assert!(out.contains(var), "{var} not in help:\n{out}");
    }
}

#[test]
fn a_bad_setting_stops_startup_naming_the_variable() {
    let seed = [
        ("HIWARE_ID", "u"),
        ("HIWARE_PW", "startup-test-pw"),
        ("MDWAP1P_IP", "127.0.0.1"),
    ];
    for (var, value) in [
        ("PINKPAGE_BIND", "nonsense"),
        ("PINKPAGE_HOST_KEY_POLICY", "trust-everything"),
        ("PINKPAGE_HEALTH_INTERVAL_S", "soon"),
    ] {
        let mut env = seed.to_vec();
        env.push((var, value));
        let (code, out) = run_to_exit(&[], &env);
        assert_ne!(code, Some(0), "{var}={value} was accepted");
        assert!(out.contains(var), "the message does not name {var}:\n{out}");
        assert!(!out.contains("startup-test-pw"), "the password leaked:\n{out}");
    }
}

#[test]
fn a_missing_password_stops_startup_naming_the_variable() {
    let (code, out) = run_to_exit(&[], &[("HIWARE_ID", "u"), ("MDWAP1P_IP", "127.0.0.1")]);
    assert_ne!(code, Some(0));
    assert!(out.contains("HIWARE_PW"), "{out}");
}

#[test]
fn an_unusable_database_path_stops_startup_naming_the_variable() {
    let (code, out) = run_to_exit(
        &[],
        &[
            ("HIWARE_ID", "u"),
            ("HIWARE_PW", "pw"),
            ("MDWAP1P_IP", "127.0.0.1"),
            ("PINKPAGE_DB", "/proc/no-such-dir/pinkpage.db"),
            ("PINKPAGE_BIND", "127.0.0.1:0"),
        ],
    );
    assert_ne!(code, Some(0));
    assert!(out.contains("PINKPAGE_DB"), "{out}");
}

#[tokio::test]
async fn under_systemd_the_daemon_says_ready_once_its_port_answers() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&socket_path).unwrap();
    systemd
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let app = crate::support::daemon::TestApp::builder()
        .server(crate::support::daemon::ServerEntry::unreachable("nowhere"))
        .env("NOTIFY_SOCKET", socket_path.to_str().unwrap())
        .spawn()
        .await;
    let mut buf = [0u8; 256];
    let n = tokio::task::spawn_blocking(move || systemd.recv(&mut buf).map(|n| buf[..n].to_vec()))
        .await
        .unwrap()
        .expect("READY=1 on NOTIFY_SOCKET");
    let state = String::from_utf8(n).unwrap();
    assert!(state.starts_with("READY=1\n"), "{state:?}");
    assert!(
        state.contains(&format!("STATUS=listening on port {}", app.port)),
        "{state:?}"
    );
    assert_eq!(app.get("/api/v1/health").await.status(), 200);
}

/// `deploy/pinkpage.service` is a unit systemd accepts without a warning
/// (`systemd-analyze verify`; skipped, saying so, where systemd is not
/// installed). The `ExecStart` path is pointed at this build's binary,
/// which verify requires to exist.
#[test]
fn the_sample_systemd_unit_verifies_cleanly() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/pinkpage.service")).unwrap();
    for hardening in [
        "Type=notify",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/pinkpage",
        "User=pinkpage",
    ] {
        assert!(unit.contains(hardening), "{hardening} missing");
    }
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("SKIPPED: systemd-analyze is not installed; the unit was not verified");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pinkpage.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/pinkpage", env!("CARGO_BIN_EXE_pinkpage")),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("pinkpage.service"),
        "systemd warns about the unit:\n{stderr}"
    );
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// The database holds password hashes and command output: it, its WAL and
/// shared-memory files, and the data directory are the daemon user's alone
/// even when the daemon runs under a umask that would give them to
/// everyone (0000: every file 0666 and directory 0777 without the fix).
#[tokio::test]
async fn the_database_its_wal_and_the_data_directory_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;

    use crate::support::daemon::{ServerEntry, TestApp};

    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .without_accounts()
        .umask(0o000)
        .spawn()
        .await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let db = app.database().to_path_buf();
    let with = |suffix: &str| {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    // the daemon wrote its start row: the WAL and its index exist
    for file in [db.clone(), with("-wal"), with("-shm")] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&app.dir().join("data")), 0o700, "the data directory");
}
