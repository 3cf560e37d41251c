//! `.env` as the real binary loads it: a malformed line stops startup
//! without echoing its value, and `$` in a value is taken literally.

use std::process::{Command, Stdio};

/// Runs `pinkpage check-config` in a fresh directory holding `dotenv` as
/// its `.env`; returns (exit code, stderr and stdout).
fn check_config_with(dotenv: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), dotenv).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pinkpage"))
        .arg("check-config")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PINKPAGE_DB", dir.path().join("pinkpage.db"))
        .stdin(Stdio::null())
        .output()
        .expect("run pinkpage");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code(), text)
}

#[test]
fn a_malformed_password_line_stops_startup_naming_the_line_and_variable_but_not_the_value() {
    let (code, out) = check_config_with("HIWARE_ID=hiware\nHIWARE_PW=Pa\\ss-91c7\nMDWAP1P_IP=10.0.0.1\n");

    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(".env:2: HIWARE_PW:"), "{out}");
    assert!(!out.contains("91c7") && !out.contains("Pa\\ss"), "{out}");
}

#[test]
fn a_dollar_in_a_value_is_taken_literally() {
    // check-config prints the login user: substituted, `$USER` would
    // become "" (the environment is cleared) and the line would read "hi@"
    let (code, out) = check_config_with("HIWARE_ID=hi$USER\nHIWARE_PW=Pa$word\nMDWAP1P_IP=10.0.0.1\n");

    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("hi$USER@10.0.0.1:22"), "{out}");
}
