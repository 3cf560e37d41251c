//! Server-to-server transfers (`scp_transfer`) end to end: the real daemon
//! relaying over SFTP between two real sshd servers.
//!
//! Both servers serve the same test user on this machine, so each test has
//! its own `/tmp/pinkpage-xfer-<uuid>/{src,dst}` owned by that user.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::daemon::TestApp;
use crate::support::fixtures::{with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::chown_to_test_user;
use crate::support::sshd::{SshdServer, TestUser};
use crate::support::ws::WsClient;

/// A test's source and destination directories, in one [`TempTree`].
struct Dirs {
    /// Holds both directories; removes them on drop.
    _tree: TempTree,
    src: PathBuf,
    dst: PathBuf,
}

impl Dirs {
    /// Creates both, owned by the test user (the destination unless
    /// `writable_dst` is false, which leaves it root's).
    fn new(writable_dst: bool) -> Dirs {
        // a private tree, so only the directories made for the test user
        // are its own
        let tree = TempTree::private("xfer");
        let src = PathBuf::from(tree.mkdir("src"));
        let dst = PathBuf::from(tree.mkdir("dst"));
        chown_to_test_user(&src);
        if writable_dst {
            chown_to_test_user(&dst);
        }
        Dirs {
            _tree: tree,
            src,
            dst,
        }
    }

    /// Writes a source file readable by the test user.
    fn put(&self, name: &str, content: &[u8]) {
        std::fs::write(self.src.join(name), content).unwrap();
    }

    /// Every name in the destination directory, hidden ones included.
    fn dst_names(&self) -> BTreeSet<String> {
        names_in(&self.dst)
    }

    /// The `[[transfers]]` TOML for `alpha:src/<pattern>` -> `beta:dst`.
    fn toml(&self, name: &str, pattern: &str, verify: bool) -> String {
        format!(
            "[[transfers]]\nname = {name:?}\nsource_server = \"alpha\"\nsource_glob = {:?}\n\
             destination_server = \"beta\"\ndestination_dir = {:?}\nverify_sha256 = {verify}\n",
            format!("{}/{pattern}", self.src.display()),
            self.dst.display().to_string(),
        )
    }
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Two sshd servers, `alpha` and `beta`, and a daemon with `transfers`.
async fn app_with_two_servers(transfers: &str) -> (TestApp, SshdServer, SshdServer) {
    let (builder, [alpha, beta]) = with_servers(["alpha", "beta"]);
    let app = builder.transfers_toml(transfers).spawn().await;
    (app, alpha, beta)
}

/// Runs `name` and returns its last frame (`scp_complete` or `error`) and
/// the `scp_progress` frames before it.
async fn run_transfer(c: &mut WsClient, name: &str) -> (Value, Vec<Value>) {
    c.send(json!({"type": "scp_transfer", "transfer_name": name, "request_id": "x1"}))
        .await;
    let mut progress = Vec::new();
    loop {
        // generous: a debug build on a loaded machine verifies slowly
        let f = c
            .try_recv(std::time::Duration::from_secs(300))
            .await
            .expect("no frame within 300 s");
        match f["type"].as_str().unwrap() {
            "scp_progress" => progress.push(f),
            "scp_complete" | "error" => return (f, progress),
            _ => {}
        }
    }
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Waits (bounded) until `dst` holds a temporary file of ours.
async fn wait_for_temp_file(dirs: &Dirs) -> String {
    eventually("a temporary file appears in the destination", async || {
        dirs.dst_names().into_iter().find(|n| n.contains(".pinkpage-"))
    })
    .await
}

#[tokio::test]
async fn configured_transfers_are_listed_over_rest() {
    let dirs = Dirs::new(true);
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("nightly", "*.dat", true)).await;
    let list: Value = app.get("/api/v1/transfers").await.json().await.unwrap();
    let t = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "nightly")
        .expect("listed");
    assert_eq!(t["source_server"], "alpha");
    assert_eq!(t["destination_server"], "beta");
    assert_eq!(t["verify_sha256"], true);
    assert_eq!(t["source_glob"], format!("{}/*.dat", dirs.src.display()));
}

#[tokio::test]
async fn a_glob_over_several_files_copies_exactly_the_matching_ones_with_equal_contents() {
    let dirs = Dirs::new(true);
    dirs.put("a.dat", b"alpha\n");
    dirs.put("b.dat", &vec![7u8; 1_000_000]);
    dirs.put("empty.dat", b"");
    dirs.put("notes.txt", b"not matched");
    dirs.put(".hidden.dat", b"a leading dot is not matched by *");
    std::fs::create_dir(dirs.src.join("dir.dat")).unwrap();
    // each copy gets its source's mode (set on the open handle, so the
    // server's umask does not narrow it; read-only too); the test user
    // reads them as "other"
    for (name, mode) in [("a.dat", 0o444), ("b.dat", 0o755), ("empty.dat", 0o604)] {
        std::fs::set_permissions(dirs.src.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // an older copy at the destination is replaced atomically
    std::fs::write(dirs.dst.join("a.dat"), b"old").unwrap();
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("t", "*.dat", false)).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;

    let (done, _) = run_transfer(&mut c, "t").await;

    assert_eq!(done["type"], "scp_complete", "{done}");
    assert_eq!(done["request_id"], "x1");
    assert_eq!(done["transfer_name"], "t");
    let names: Vec<&str> = done["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.dat", "b.dat", "empty.dat"]);
    assert_eq!(done["bytes"], 6 + 1_000_000);
    assert!(
        done["files"][0].get("sha256").is_none(),
        "no hash unless configured"
    );
    assert_eq!(
        dirs.dst_names(),
        ["a.dat", "b.dat", "empty.dat"].map(String::from).into(),
        "exactly the matching files, no temporary file"
    );
    for name in ["a.dat", "b.dat", "empty.dat"] {
        assert_eq!(
            std::fs::read(dirs.src.join(name)).unwrap(),
            std::fs::read(dirs.dst.join(name)).unwrap(),
            "{name}"
        );
        let mode = |dir: &Path| std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dirs.dst), mode(&dirs.src), "{name}'s mode");
    }
    // recorded in the audit trail (written after the reply: wait for it)
    let audit = app.audit_events("action=transfer.end", 1).await;
    let text = Value::from(audit).to_string();
    assert!(text.contains("\"complete\"") && text.contains("b.dat"), "{text}");
}

#[tokio::test]
async fn a_verified_copy_keeps_a_mode_its_owner_cannot_read() {
    // verifying reads the copy back as its owner: the mode, which takes
    // that away, must come after it
    let dirs = Dirs::new(true);
    dirs.put("locked.dat", b"group and others may read this\n");
    std::fs::set_permissions(
        dirs.src.join("locked.dat"),
        std::fs::Permissions::from_mode(0o044),
    )
    .unwrap();
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("t", "*.dat", true)).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;

    let (done, _) = run_transfer(&mut c, "t").await;

    assert_eq!(done["type"], "scp_complete", "{done}");
    assert_eq!(
        done["files"][0]["sha256"].as_str().unwrap(),
        sha256_of(&dirs.src.join("locked.dat"))
    );
    let copy = dirs.dst.join("locked.dat");
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o044
    );
    assert_eq!(std::fs::read(&copy).unwrap(), b"group and others may read this\n");
    assert_eq!(
        dirs.dst_names(),
        ["locked.dat".to_owned()].into(),
        "no temporary file left"
    );
}

#[tokio::test]
async fn a_256_mib_file_arrives_with_an_equal_sha256_and_the_daemon_memory_stays_bounded() {
    let dirs = Dirs::new(true);
    let big = dirs.src.join("big.bin");
    let ok = Command::new("head")
        .args(["-c", "268435456", "/dev/urandom"])
        .stdout(std::fs::File::create(&big).unwrap())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("big", "big.bin", true)).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;

    let (done, progress) = run_transfer(&mut c, "big").await;

    assert_eq!(done["type"], "scp_complete", "{done}");
    let source_sha = sha256_of(&big);
    assert_eq!(done["files"][0]["sha256"], source_sha.as_str());
    assert_eq!(sha256_of(&dirs.dst.join("big.bin")), source_sha);
    assert_eq!(done["bytes"], 268_435_456u64);
    // progress is throttled to ~10 a second
    let secs = done["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
    assert!(!progress.is_empty());
    assert!(
        progress.len() as f64 <= secs * 10.0 + 2.0,
        "{} in {secs}s",
        progress.len()
    );
    let last = progress.last().unwrap();
    assert_eq!(last["bytes_total"], 268_435_456u64);
    assert_eq!(last["files_total"], 1);
    // The daemon never held the file: its peak resident set stays far
    // below the file's size.
    let peak_mib = app.peak_rss_kib() / 1024;
    assert!(peak_mib < 200, "daemon peak RSS {peak_mib} MiB");
    eprintln!("daemon VmHWM after copying 256 MiB: {peak_mib} MiB");
}

#[tokio::test]
async fn a_destination_without_write_permission_gives_24000_and_leaves_nothing_behind() {
    let dirs = Dirs::new(false);
    dirs.put("a.dat", b"data");
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("t", "*.dat", false)).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;

    let (err, _) = run_transfer(&mut c, "t").await;

    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["error"]["code"], 24000);
    assert_eq!(err["request_id"], "x1");
    let detail = err["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("a.dat") && detail.to_lowercase().contains("permission"),
        "{detail}"
    );
    assert!(dirs.dst_names().is_empty(), "{:?}", dirs.dst_names());
}

#[tokio::test]
async fn a_glob_matching_nothing_gives_24001() {
    let dirs = Dirs::new(true);
    dirs.put("a.txt", b"data");
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("t", "*.dat", false)).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;

    let (err, _) = run_transfer(&mut c, "t").await;

    assert_eq!(err["error"]["code"], 24001, "{err}");
    assert!(dirs.dst_names().is_empty());
    // the slot is free again: the next transfer is accepted
    dirs.put("b.dat", b"now there is one");
    let (done, _) = run_transfer(&mut c, "t").await;
    assert_eq!(done["type"], "scp_complete", "{done}");
}

/// A 2 GiB sparse file: reads fast, but takes long enough to stop mid-way.
fn big_sparse_file(dirs: &Dirs, name: &str) {
    let f = std::fs::File::create(dirs.src.join(name)).unwrap();
    f.set_len(2 << 30).unwrap();
}

#[tokio::test]
async fn end_session_during_a_large_copy_stops_it_and_leaves_no_temporary_file() {
    let dirs = Dirs::new(true);
    big_sparse_file(&dirs, "huge.dat");
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("t", "*.dat", false)).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.request(
        json!({"type": "scp_transfer", "transfer_name": "t"}),
        "scp_transfer_started",
    )
    .await;
    let (p, _) = c.recv_until("scp_progress").await;
    assert!(p["bytes_done"].as_u64().unwrap() > 0);
    let temp = wait_for_temp_file(&dirs).await;
    assert!(
        temp.starts_with(".huge.dat.pinkpage-") && temp.ends_with(".part"),
        "{temp}"
    );
    // private while incomplete, whatever the source's mode (0644 here)
    let partial = std::fs::metadata(dirs.dst.join(&temp))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(partial & 0o077, 0, "the partial copy is {partial:o}");

    c.send(json!({"type": "end_session"})).await;
    let (cancelled, before) = c.recv_until("scp_cancelled").await;

    assert!(
        before.iter().chain([&cancelled]).all(|f| f["type"] != "error"),
        "{before:?}"
    );
    assert!(cancelled["bytes_done"].as_u64().unwrap() < 2 << 30);
    assert!(dirs.dst_names().is_empty(), "{:?}", dirs.dst_names());
    // the lock is released after the transfer has finished (its temporary
    // file removed), so session_ended follows scp_cancelled
    c.recv_until("session_ended").await;
    let status: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(status["active"], false);
}

#[tokio::test]
async fn hostile_file_names_are_copied_literally() {
    let dirs = Dirs::new(true);
    let hostile = [
        "with space.dat",
        "quote's \"double\".dat",
        "semi;colon && echo pwned.dat",
        "$(touch pwned).dat",
        "`touch pwned2`.dat",
        "new\nline.dat",
        "한글 파일.dat",
        "-n.dat",
        "star*[x]?.dat",
    ];
    for (i, name) in hostile.iter().enumerate() {
        dirs.put(name, format!("content {i}").as_bytes());
    }
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("t", "*.dat", true)).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;

    let (done, _) = run_transfer(&mut c, "t").await;

    assert_eq!(done["type"], "scp_complete", "{done}");
    assert_eq!(dirs.dst_names(), hostile.map(String::from).into());
    for name in hostile {
        assert_eq!(
            std::fs::read(dirs.src.join(name)).unwrap(),
            std::fs::read(dirs.dst.join(name)).unwrap(),
            "{name:?}"
        );
    }
    // nothing was run by a shell
    assert_eq!(names_in(&dirs.src).len(), hostile.len());
    let home = PathBuf::from("/home").join(TestUser::get().name);
    for stray in ["pwned", "pwned2"] {
        assert!(!home.join(stray).exists() && !dirs.dst.join(stray).exists());
    }
}

#[tokio::test]
async fn only_the_lock_owner_may_transfer_and_unknown_names_give_23001() {
    let dirs = Dirs::new(true);
    dirs.put("a.dat", b"data");
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("t", "*.dat", false)).await;
    let mut owner = WsClient::stub(&app).await;
    let mut other = WsClient::stub(&app).await;

    other
        .send(json!({"type": "scp_transfer", "transfer_name": "t", "request_id": "r"}))
        .await;
    let err = other.expect_error().await;
    assert_eq!(err["error"]["code"], 50008);
    assert_eq!(err["request_id"], "r");

    owner.start_session().await;
    other
        .send(json!({"type": "scp_transfer", "transfer_name": "t"}))
        .await;
    assert_eq!(other.expect_error().await["error"]["code"], 50008);
    owner
        .send(json!({"type": "scp_transfer", "transfer_name": "nope"}))
        .await;
    assert_eq!(owner.expect_error().await["error"]["code"], 23001);
    assert!(dirs.dst_names().is_empty());
}

#[tokio::test]
async fn a_second_transfer_while_one_runs_gives_50009_and_a_command_gives_50010() {
    let dirs = Dirs::new(true);
    big_sparse_file(&dirs, "huge.dat");
    let (app, _a, _b) = app_with_two_servers(&dirs.toml("t", "*.dat", false)).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "scp_transfer", "transfer_name": "t"}))
        .await;
    // sent at once: the first is still being checked against the lock
    c.send(json!({"type": "scp_transfer", "transfer_name": "t", "request_id": "second"}))
        .await;
    let (err, _) = c.recv_until("error").await;
    assert_eq!(err["error"]["code"], 50009, "{err}");
    assert_eq!(err["request_id"], "second");
    c.recv_until("scp_progress").await;

    // and once it is surely running
    c.send(json!({"type": "scp_transfer", "transfer_name": "t"}))
        .await;
    let (err, _) = c.recv_until("error").await;
    assert_eq!(err["error"]["code"], 50009, "{err}");
    c.send(json!({"type": "ssh_command", "server": "alpha", "command": "true"}))
        .await;
    let (err, _) = c.recv_until("error").await;
    assert_eq!(err["error"]["code"], 50010, "{err}");

    c.send(json!({"type": "cancel"})).await;
    let (cancelled, _) = c.recv_until("scp_cancelled").await;
    assert_eq!(cancelled["transfer_name"], "t");
    assert!(dirs.dst_names().is_empty(), "{:?}", dirs.dst_names());
}

#[tokio::test]
async fn a_dry_run_lists_what_would_be_copied_and_replaced_and_copies_nothing() {
    let dirs = Dirs::new(true);
    dirs.put("a.dat", b"new file");
    dirs.put("b.dat", b"newer contents");
    dirs.put("skip.txt", b"not matched");
    std::fs::write(dirs.dst.join("b.dat"), b"old").unwrap();
    let (app, _alpha, _beta) = app_with_two_servers(&dirs.toml("nightly", "*.dat", false)).await;
    let before = dirs.dst_names();

    // over REST
    let res = app
        .http
        .post(app.url("/api/v1/transfers/nightly/plan"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rest: Value = res.json().await.unwrap();
    assert_eq!(
        rest["files"],
        json!([
            {"name": "a.dat", "bytes": 8, "replaces_bytes": null},
            {"name": "b.dat", "bytes": 14, "replaces_bytes": 3}
        ]),
        "{rest}"
    );
    assert_eq!(rest["bytes"], 22);
    assert_eq!(rest["replaces"], 1);
    assert_eq!(rest["source_server"], "alpha");
    assert_eq!(rest["destination_server"], "beta");

    // over the WebSocket, without the lock: the same plan
    let mut c = WsClient::stub(&app).await;
    let ws = c
        .request(
            json!({"type": "scp_transfer_plan", "transfer_name": "nightly", "request_id": "p"}),
            "scp_transfer_plan",
        )
        .await;
    assert_eq!(ws["files"], rest["files"], "{ws}");
    assert_eq!(ws["request_id"], "p");
    // an unknown transfer is 23001 on both
    let unknown = c
        .ask(
            json!({"type": "scp_transfer_plan", "transfer_name": "nope", "request_id": "u"}),
            "scp_transfer_plan",
        )
        .await;
    assert_eq!(unknown["error"]["code"], 23001, "{unknown}");
    let res = app
        .http
        .post(app.url("/api/v1/transfers/nope/plan"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // looking changed nothing
    assert_eq!(dirs.dst_names(), before);
    assert_eq!(std::fs::read(dirs.dst.join("b.dat")).unwrap(), b"old");

    // a run then shows in the history
    c.start_session().await;
    let (done, _) = run_transfer(&mut c, "nightly").await;
    assert_eq!(done["type"], "scp_complete", "{done}");
    let runs: Value = eventually("the run in the history", async || {
        let runs: Value = app.get("/api/v1/transfers/runs").await.json().await.unwrap();
        (runs.as_array().is_some_and(|r| !r.is_empty())).then_some(runs)
    })
    .await;
    assert_eq!(runs[0]["transfer_name"], "nightly", "{runs}");
    assert_eq!(runs[0]["outcome"], "complete");
    assert_eq!(runs[0]["files"], json!(["a.dat", "b.dat"]));
}
