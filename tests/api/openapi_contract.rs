//! The OpenAPI document is the contract: schemathesis (installed by
//! `scripts/test-env.sh`, pinned there) reads `/api-docs/openapi.json` of a
//! real daemon, generates requests from it (valid ones, which must be
//! accepted, and invalid ones, which must be refused), sends undeclared
//! methods (405 with `Allow` expected) and checks every answer against the
//! declared statuses and schemas.
//!
//! The daemon's one server is a real sshd that confines the test user to
//! SFTP in a chroot jail: schemathesis uploads to any path it makes up, and
//! must not write into the test user's home (where `.ssh/authorized_keys`
//! lives) nor leave files that change the next run's answers. The names
//! schemathesis takes
//! from `GET /api/v1/servers` (for `/check` and the health routes) answer
//! 200 rather than the 502 of an unreachable server, which would count as
//! a server error. `POST /api/v1/diff/command` is left out: a generated
//! command must never run on a server, even a test one. Every other name
//! it makes up is unknown (23000). The seed is fixed and the examples per
//! operation bounded, so a run is repeatable and takes well under a minute.

use std::process::Command;

use crate::support::daemon::TestApp;
use crate::support::sshd::{SftpJail, SshdOptions, SshdServer};

/// Fixed, so a failure reproduces with the same requests.
const SEED: &str = "20261129";
/// Generated examples per operation and phase: enough to find missing
/// constraints, bounded so the run stays within a couple of minutes.
const MAX_EXAMPLES: &str = "25";

#[tokio::test]
async fn schemathesis_finds_no_failure_against_the_openapi_document() {
    let jail = SftpJail::new();
    let sshd = SshdServer::start(SshdOptions {
        sftp_jail: Some(jail.root.clone()),
        ..SshdOptions::default()
    });
    let app = TestApp::builder().sshd("mdwap1p", &sshd).spawn().await;
    let schema = app.url("/api-docs/openapi.json");
    // its example database and reports land here, not in the checkout
    let work = tempfile::tempdir().expect("temp dir");
    let cwd = work.path().to_owned();
    // The admin's token reaches schemathesis through its config file and
    // the environment, never its arguments (which any local user can read
    // in /proc).
    //
    // A password that fits the schema (12 to 1024 characters) may still be
    // refused as weak (one character repeated, or the account's own name):
    // rules a JSON schema cannot state. So "every schema-valid request is
    // accepted" is not asked of the account routes; every other check is.
    std::fs::write(
        cwd.join("schemathesis.toml"),
        "headers = { Authorization = \"Bearer ${PINKPAGE_TEST_TOKEN}\" }\n\n\
         [[operations]]\n\
         include-path-regex = \"^/api/v1/users\"\n\
         checks.positive_data_acceptance.enabled = false\n",
    )
    .expect("write schemathesis.toml");
    let token = app.admin_token.clone().expect("the test admin's token");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("st")
            .current_dir(&cwd)
            .env("PINKPAGE_TEST_TOKEN", token)
            .args([
                "run",
                &schema,
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--exclude-path",
                "/api/v1/diff/command",
                "--seed",
                SEED,
                "--max-examples",
                MAX_EXAMPLES,
                // One worker: with two, hypothesis parses lambda sources with
                // `ast.parse` on two threads at once, which CPython 3.11 can
                // fail with "AST constructor recursion depth mismatch" (a
                // runtime error of the tool, not a finding).
                "--workers",
                "1",
                "--request-timeout",
                "10",
                "--generation-database",
                "none",
                "--no-color",
            ])
            .output()
    })
    .await
    .expect("schemathesis task")
    .expect("run `st` (schemathesis); install it with scripts/test-env.sh");
    let report =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis reported failures ({}):\n{report}",
        output.status
    );
    // a run that tested nothing would also exit 0: every operation but
    // diff/command must have been exercised
    assert!(
        report.contains("Tested: 33"),
        "not every operation was tested:\n{report}"
    );
}

#[tokio::test]
async fn a_method_the_document_does_not_declare_gets_405_with_allow() {
    let app = TestApp::spawn_without_ssh().await;
    let res = app
        .http
        .patch(app.url("/api/v1/session"))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, DELETE");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10004, "{body}");
    // a path the document does not know stays a 404, whatever the method
    let res = app
        .http
        .patch(app.url("/api/v1/nothing-here"))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 404);
    assert!(res.headers().get("allow").is_none());
}
