//! Restart under load: `kill -9` the daemon while a large transfer and
//! twenty commands run, then start it again on the same database. Nothing
//! half-done may be left: the destination keeps its old file (never a
//! partial one), no remote process of the old daemon survives, every
//! client that comes back sees a consistent, free lock, and the next
//! connection to a server removes the temporary files left there.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::daemon::TEST_ADMIN;
use crate::support::fixtures::{big_transfer_toml, hidden_files, with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::TestUser;
use crate::support::ws::WsClient;

/// The transfer's file: sparse, so making it costs no disk and no time.
const BIG: u64 = 1 << 30;

/// Commands running when the daemon dies, spread over the servers so no
/// sshd sees more than a handful of new connections at once (its
/// `MaxStartups` starts refusing at 10).
const COMMANDS: usize = 20;

#[tokio::test]
async fn kill_9_under_load_leaves_no_partial_file_no_remote_process_and_a_free_lock() {
    let tree = TempTree::for_test_user("restart-load");
    tree.mkdir("src");
    let dst = tree.mkdir("dst");
    let big = std::fs::File::create(tree.join("src/big.dat")).unwrap();
    big.set_len(BIG).unwrap();
    drop(big);
    tree.write("dst/big.dat", "the old file");
    let names = ["s1", "s2", "s3", "s4", "s5"];
    let (builder, _servers) = with_servers(names);
    let transfer = big_transfer_toml(&tree, "s1", "s2", &dst);
    let mut app = builder.transfers_toml(&transfer).spawn().await;

    let mut owner = WsClient::stub(&app).await;
    owner.start_session().await;
    owner
        .send(json!({"type": "scp_transfer", "transfer_name": "big", "request_id": "t1"}))
        .await;
    owner.recv_until("scp_progress").await;
    let mut batches = Vec::new();
    let mut sleepers = Vec::new();
    for i in 0..COMMANDS {
        let mut c = WsClient::connect(&app, "/ws/v1/bmx4").await;
        let command = format!("sleep 1091.{}{:02}", app.port, i);
        c.send(json!({"type": "batch_execute", "server": names[i % names.len()], "commands": [command]}))
            .await;
        batches.push(c);
        sleepers.push(command);
    }
    let mut running = Vec::new();
    for command in &sleepers {
        running.push(RemoteProcess::started(command).await);
    }
    // a script running on s3, its temporary file in /tmp
    let mut scripts = WsClient::connect(&app, "/ws/v1/bmx5").await;
    let marker = format!("sleep 1092.{}", app.port);
    scripts
        .send(json!({"type": "script_execute", "server": "s3", "script": format!("{marker}\n")}))
        .await;
    let (started, _) = scripts.recv_until("script_started").await;
    let script_file = started["remote_path"].as_str().unwrap().to_owned();
    let script = RemoteProcess::started(&marker).await;
    // the copy's temporary file is on the destination, and beside it a file
    // with a look-alike name that Pink-Page never recorded
    let copy_temp = eventually("the copy's temporary file", async || {
        match hidden_files(&dst).as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(copy_temp.starts_with(".big.dat.pinkpage-"), "{copy_temp}");
    let look_alike = tree.write("dst/.mine.dat.pinkpage-0123456789ab.part", "not pinkpage's");

    // SIGKILL: no cleanup of any kind runs in the daemon
    app.kill_and_restart().await;

    // the old daemon's remote processes end with their connections
    for (sleeper, command) in running.into_iter().zip(&sleepers) {
        sleeper
            .ended(&format!("`{command}` outlived the killed daemon"))
            .await;
    }
    script.ended("the script outlived the killed daemon").await;
    // the destination has the old file, whole, and never a partial one
    assert_eq!(
        std::fs::read_to_string(tree.join("dst/big.dat")).unwrap(),
        "the old file"
    );
    let finals: Vec<String> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(finals, ["big.dat"], "only the old file under a final name");
    // clients that come back see the lock free, in the welcome and over REST
    let back = WsClient::stub(&app).await;
    assert_eq!(
        back.welcome["session_status"]["active"], false,
        "{}",
        back.welcome
    );
    let session: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(session["active"], false, "{session}");
    // and the runs the dead daemon left are on record as interrupted
    let runs: Value = app.get("/api/v1/bmx4/runs?limit=100").await.json().await.unwrap();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), COMMANDS, "{runs}");
    assert!(statuses.iter().all(|s| *s == "interrupted"), "{statuses:?}");
    // and so are the transfer and the script, in the audit trail, under
    // the user who started them, stamped when the new daemon found them
    for (action, server) in [("transfer.interrupted", "s1"), ("script.interrupted", "s3")] {
        let rows = app.audit_events(&format!("action={action}"), 1).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["server"], server, "{rows:?}");
        assert_eq!(rows[0]["user"], TEST_ADMIN, "{rows:?}");
        assert!(rows[0]["detail"]["started_at"].as_str().unwrap() < rows[0]["at"].as_str().unwrap());
    }
    assert!(Path::new(&dst).is_dir());
    drop(batches);

    // the dead daemon's temporary files stay until a connection to their
    // server: then exactly the recorded ones go, and each removal is audited
    assert!(Path::new(&script_file).exists(), "nothing connected to s3 yet");
    assert!(
        tree.join(&format!("dst/{copy_temp}")).exists(),
        "nothing connected to s2 yet"
    );
    for server in ["s2", "s3"] {
        let mut c = WsClient::connect(&app, "/ws/v1/bmx4").await;
        c.send(json!({"type": "batch_execute", "server": server, "commands": ["true"]}))
            .await;
        c.recv_until("batch_complete").await;
    }
    assert!(!Path::new(&script_file).exists(), "the script's file was removed");
    assert_eq!(hidden_files(&dst), [".mine.dat.pinkpage-0123456789ab.part"]);
    assert_eq!(std::fs::read_to_string(look_alike).unwrap(), "not pinkpage's");
    let removed = app.audit_events("action=recovery.temp_removed", 2).await;
    let mut paths: Vec<&str> = removed
        .iter()
        .map(|e| e["detail"]["path"].as_str().unwrap())
        .collect();
    paths.sort();
    let copy_path = format!("{dst}/{copy_temp}");
    let mut want = vec![copy_path.as_str(), script_file.as_str()];
    want.sort();
    assert_eq!(paths, want, "{removed:?}");
}

/// Leftover records as a killed daemon leaves them (written straight into
/// the database, then the daemon restarted so it reads them): only files
/// with Pink-Page's temporary names that are regular files are removed; a
/// path the server refuses to remove is tried at three connections, then
/// given up with an audit row naming it; every record is gone after.
#[tokio::test]
async fn only_recorded_regular_files_with_our_names_are_removed_and_a_refused_one_is_given_up() {
    let tree = TempTree::for_test_user("leftovers");
    let mine = tree.mkdir("mine");
    let ours = tree.write("mine/.ours.dat.pinkpage-0123456789ab.part", "partial copy");
    let precious = tree.write("mine/precious.txt", "not a temporary file");
    let target = tree.write("mine/target.txt", "what a symlink points at");
    let link = format!("{mine}/.link.dat.pinkpage-0123456789ab.part");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // a directory the test user cannot change: removing from it is refused
    let locked_dir = tree.path("locked");
    std::fs::create_dir(&locked_dir).unwrap();
    let refused = tree.write("locked/.stuck.dat.pinkpage-0123456789ab.part", "cannot go");

    let (builder, [alpha]) = with_servers(["alpha"]);
    let mut app = builder.spawn().await;
    {
        let db = rusqlite::Connection::open(app.database()).unwrap();
        let user = TestUser::get();
        for (path, kind) in [
            (&ours, "transfer"),
            (&precious, "transfer"),
            (&link, "upload"),
            (&refused, "upload"),
        ] {
            db.execute(
                "INSERT INTO temp_files (recorded_at, server, username, host, port, path, kind)
                 VALUES ('2026-01-01T00:00:00Z', 'alpha', ?1, '127.0.0.1', ?2, ?3, ?4)",
                rusqlite::params![user.name, alpha.port(), path, kind],
            )
            .unwrap();
        }
    }
    app.kill_and_restart().await;
    assert!(Path::new(&ours).exists(), "nothing connected to alpha yet");

    for _ in 0..3 {
        let mut c = WsClient::connect(&app, "/ws/v1/bmx4").await;
        c.send(json!({"type": "batch_execute", "server": "alpha", "commands": ["true"]}))
            .await;
        c.recv_until("batch_complete").await;
        assert!(!Path::new(&ours).exists(), "the first connection removed ours");
    }
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "not a temporary file"
    );
    assert!(
        std::fs::symlink_metadata(&link).unwrap().is_symlink(),
        "the symlink stays"
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "what a symlink points at"
    );
    assert!(Path::new(&refused).exists(), "the server refused");

    let removed = app.audit_events("action=recovery.temp_removed", 1).await;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["detail"]["path"], ours.as_str());
    let given_up = app.audit_events("action=recovery.temp_left", 1).await;
    assert_eq!(given_up[0]["detail"]["path"], refused.as_str(), "{given_up:?}");
    assert_eq!(given_up[0]["detail"]["attempts"], 3, "{given_up:?}");
    let database = app.database().to_path_buf();
    eventually("every record dropped", async || {
        let db = rusqlite::Connection::open(&database).unwrap();
        let left: i64 = db
            .query_row("SELECT count(*) FROM temp_files", [], |r| r.get(0))
            .unwrap();
        if left == 0 {
            Ok(())
        } else {
            Err(left)
        }
    })
    .await;
}
