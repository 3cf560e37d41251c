//! The OpenAPI document is the contract: schemathesis (installed by
//! `scripts/test-env.sh`, pinned there) reads `/api-docs/openapi.json` of a
//! real daemon, generates requests from it (valid ones, which must be
//! accepted, and invalid ones, which must be refused), sends undeclared
//! methods (405 with `Allow` expected) and checks every answer against the
//! declared statuses and schemas. The document is written for clients that
//! are not ours: every rule the server applies to a field (lengths in
//! characters, patterns, ranges) is declared there, and everything the
//! document allows (`1009.0` is an integer in JSON Schema) is accepted.
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
//! it makes up is unknown (23000).
//!
//! In CI the seed is fixed ([`SEED`]) and the examples per operation
//! bounded ([`MAX_EXAMPLES`]), so a run is repeatable and takes a couple of
//! minutes. Other seeds find what this one does not; before landing a
//! change to a route or a request type, run the wider check (ignored in
//! CI) with a few seeds of your own, each against a daemon of its own
//! (schemathesis creates accounts and tokens):
//!
//! ```text
//! for seed in $(shuf -i 1-4294967295 -n 3); do
//!     PINKPAGE_ST_SEED=$seed PINKPAGE_ST_EXAMPLES=100 cargo test --locked --test api -- \
//!         --ignored --exact openapi_contract::schemathesis_with_any_seed_finds_no_failure || break
//! done
//! ```
//!
//! Without `PINKPAGE_ST_SEED` the test picks a seed and prints it (a
//! failure names it, so it can be rerun); `PINKPAGE_ST_EXAMPLES` defaults
//! to 100.

use std::process::Command;

use crate::support::daemon::TestApp;
use crate::support::sshd::{SftpJail, SshdOptions, SshdServer};

/// Fixed, so a failure reproduces with the same requests.
const SEED: &str = "20261129";
/// Generated examples per operation and phase: enough to find missing
/// constraints, bounded so the run stays within a couple of minutes.
const MAX_EXAMPLES: &str = "25";
/// Examples per operation of the wider check when not told.
const WIDE_EXAMPLES: &str = "100";
/// Operations schemathesis must have tested: every one but diff/command.
const OPERATIONS: &str = "Tested: 48";

#[tokio::test]
async fn schemathesis_finds_no_failure_against_the_openapi_document() {
    let report = schemathesis(SEED, MAX_EXAMPLES).await;
    assert!(
        report.contains(OPERATIONS),
        "not every operation was tested:\n{report}"
    );
}

/// The wider check: another seed and more examples (see the module docs).
#[tokio::test]
#[ignore = "minutes per seed; run before landing API changes (see the module docs)"]
async fn schemathesis_with_any_seed_finds_no_failure() {
    let seed = std::env::var("PINKPAGE_ST_SEED").unwrap_or_else(|_| any_seed().to_string());
    let examples = std::env::var("PINKPAGE_ST_EXAMPLES").unwrap_or_else(|_| WIDE_EXAMPLES.to_owned());
    // shown with --nocapture, and in the failure message either way
    println!("schemathesis seed {seed}, {examples} examples per operation");
    let report = schemathesis(&seed, &examples).await;
    assert!(
        report.contains(OPERATIONS),
        "seed {seed}: not every operation was tested:\n{report}"
    );
    // its warnings and counts, for whoever ran it with --nocapture
    println!("{report}");
}

/// A seed nobody chose: the clock's nanoseconds through the standard
/// library's randomly keyed hasher.
fn any_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Runs schemathesis with `seed` and `examples` per operation against a
/// daemon (and sshd) of its own; fails the test, naming the seed, on any
/// failure, and returns its report otherwise.
async fn schemathesis(seed: &str, examples: &str) -> String {
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
    // The document offers two credentials (the session cookie or a bearer
    // token), and schemathesis would fill the one it was not given, the
    // cookie, with made-up values. A presented credential that is not good
    // is refused even beside a good one (docs/security.md), so most
    // requests would stop at 401 and the handlers behind would go
    // untested. So made-up credentials are sent on one route only (the
    // servers list: admission judges every route alike), where they must
    // be refused; the `ignored_auth` check still sends every route a bad
    // credential and none.
    //
    // A password that fits the schema (12 to 1024 characters) may still be
    // refused as weak (one character repeated, or the account's own name),
    // and an account may not demote or disable itself: rules a JSON schema
    // cannot state. So "every schema-valid request is accepted" is not
    // asked of the account routes; every other check is.
    std::fs::write(
        cwd.join("schemathesis.toml"),
        "headers = { Authorization = \"Bearer ${PINKPAGE_TEST_TOKEN}\" }\n\n\
         [generation]\n\
         with-security-parameters = false\n\n\
         [[operations]]\n\
         include-path-regex = \"^/api/v1/users\"\n\
         checks.positive_data_acceptance.enabled = false\n\n\
         [[operations]]\n\
         include-name = \"GET /api/v1/servers\"\n\
         generation.with-security-parameters = true\n",
    )
    .expect("write schemathesis.toml");
    let token = app.admin_token.clone().expect("the test admin's token");
    let (seed_arg, examples_arg) = (seed.to_owned(), examples.to_owned());
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
                &seed_arg,
                "--max-examples",
                &examples_arg,
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
        "schemathesis (seed {seed}, {examples} examples) reported failures ({}):\n{report}",
        output.status
    );
    // a run that tested nothing would also exit 0: the callers check that
    // every operation was exercised
    report
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
