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
