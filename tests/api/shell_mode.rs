//! Shell mode (`command_mode = "shell"`) where it differs from exec mode or
//! has its own path: BMX4 commands and `diff_command` captured from the
//! PTY, a BMX5 script, a long command, and the refusal of a login shell
//! that is not POSIX. The STUB tests that both modes pass alike are in
//! `stub.rs` (`both_modes!`).

use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::{app_with_server_in, Mode, TempTree};
use crate::support::remote::RemoteProcess;
use crate::support::sshd::{SshdOptions, SshdServer, TCSH_USER};
use crate::support::ws::WsClient;

/// Sends a `batch_execute` and reads until `batch_complete`: (results,
/// completion).
async fn batch(c: &mut WsClient, request: Value) -> (Vec<Value>, Value) {
    let mut request = request;
    request["type"] = json!("batch_execute");
    c.send(request).await;
    let mut results = Vec::new();
    loop {
        let f = c.recv().await;
        match f["type"].as_str().unwrap() {
            "batch_command_result" => results.push(f),
            "batch_complete" => return (results, f),
            "error" => panic!("{f}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn bmx4_in_shell_mode_returns_merged_output_and_each_exit_status() {
    let (app, _sshd) = app_with_server_in("s1", Mode::Shell).await;
    let mut c = WsClient::connect(&app, "/ws/v1/bmx4").await;
    let (results, complete) = batch(
        &mut c,
        json!({"server": "s1", "commands": [
            "echo one",
            "echo to-err >&2; echo to-out; exit 3",
            "printf 'a\\nb'",
            "echo \"[$PINKPAGE_PROFILE_MARK]\"; cat",
        ]}),
    )
    .await;
    let exits: Vec<&Value> = results.iter().map(|r| &r["exit_status"]).collect();
    assert_eq!(exits, [&json!(0), &json!(3), &json!(0), &json!(0)], "{results:?}");
    // from the PTY: stdout and stderr in one stream, lines ending in \n
    assert_eq!(results[0]["stdout"], "one\n");
    assert_eq!(results[1]["stdout"], "to-err\nto-out\n");
    assert_eq!(results[1]["stderr"], "");
    assert_eq!(results[2]["stdout"], "a\nb");
    // the login profile was read, and stdin is /dev/null (cat ends)
    assert_eq!(results[3]["stdout"], "[loaded]\n");
    assert_eq!(
        (&complete["succeeded"], &complete["failed"]),
        (&json!(3), &json!(1))
    );
}

#[tokio::test]
async fn a_bmx4_command_past_its_timeout_in_shell_mode_is_ended_on_the_server() {
    let (app, _sshd) = app_with_server_in("s1", Mode::Shell).await;
    let mut c = WsClient::connect(&app, "/ws/v1/bmx4").await;
    let sleep = format!("sleep 1011.{}", app.port);
    c.send(json!({"type": "batch_execute", "server": "s1",
        "commands": [format!("{sleep} & wait")], "timeout_s": 2}))
        .await;
    let sleeper = RemoteProcess::started(&sleep).await;
    let (result, _) = c.recv_until("batch_command_result").await;
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["error"]["code"], 22001, "{result}");
    sleeper.ended("the command survived its timeout").await;
}

#[tokio::test]
async fn diff_command_in_shell_mode_compares_the_output_and_reports_both_statuses() {
    let (left, right) = (
        SshdServer::start(SshdOptions::default()),
        SshdServer::start(SshdOptions::default()),
    );
    let app = TestApp::builder()
        .sshd_with("left", &left, Mode::Shell.toml())
        .sshd_with("right", &right, Mode::Shell.toml())
        .spawn()
        .await;
    // both servers are this machine: the command tells them apart by the
    // server port in SSH_CONNECTION, and fails on the right
    let command = format!(
        "port=$(echo $SSH_CONNECTION | cut -d' ' -f4); echo common; echo port=$port >&2; test $port = {}",
        left.port()
    );
    let mut c = WsClient::connect(&app, "/ws/v1/diff").await;
    let frame =
        json!({"type": "diff_command", "command": command, "left_server": "left", "right_server": "right"});
    let reply = c.ask(frame, "diff_command_result").await;
    assert_eq!(reply["type"], "diff_command_result", "{reply}");
    assert_eq!(
        reply["unified_diff"],
        format!(
            "--- left:stdout\n+++ right:stdout\n@@ -1,2 +1,2 @@\n common\n-port={}\n+port={}\n",
            left.port(),
            right.port()
        )
    );
    assert_eq!(reply["left_exit_status"], 0);
    assert_eq!(reply["right_exit_status"], 1);
    assert_eq!(
        reply["left_stderr"], "",
        "stderr is merged into the compared output"
    );
}

#[tokio::test]
async fn a_script_in_shell_mode_runs_with_its_arguments_and_its_file_is_removed() {
    let (app, _sshd) = app_with_server_in("mdwap1p", Mode::Shell).await;
    let mut c = WsClient::connect(&app, "/ws/v1/bmx5").await;
    let script = "#!/bin/sh\nprintf '<%s>' \"$@\"; echo \"[$PINKPAGE_PROFILE_MARK]\"\nexit 5\n";
    c.send(json!({"type": "script_execute", "server": "mdwap1p", "script": script, "args": ["a b", "it's"]}))
        .await;
    let (started, _) = c.recv_until("script_started").await;
    let remote = started["remote_path"].as_str().unwrap().to_owned();
    let mut out = String::new();
    let done = loop {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("script_output") => out.push_str(f["data"].as_str().unwrap()),
            Some("script_complete") => break f,
            Some("error") => panic!("{f}"),
            _ => {}
        }
    };
    assert_eq!(out, "<a b><it's>[loaded]\r\n");
    assert_eq!(done["reason"], "exit", "{done}");
    assert_eq!(done["exit_status"], 5, "{done}");
    assert!(
        !std::path::Path::new(&remote).exists(),
        "the temporary script is still there"
    );
}

#[tokio::test]
async fn a_20_kib_command_with_quotes_a_here_doc_and_a_comment_runs_whole_in_shell_mode() {
    let (app, _sshd) = app_with_server_in("mdwap1p", Mode::Shell).await;
    let tree = TempTree::for_test_user("shell-mode");
    let file = tree.path("out.txt");
    // 700 numbered lines through a here-doc into a file, then a count: far
    // past a tty line (4095 bytes), within a 64 KiB frame, and full of what
    // the shell and the terminal would act on if typed as itself
    let body: String = (0..700)
        .map(|i| format!("it's line {i}: \"$x\" `id` 100%\t!\n"))
        .collect();
    let command =
        format!("cat > {file} <<'EOF'\n{body}EOF\n# a comment\nwc -l < {file}; grep -c \"it's line\" {file}");
    assert!(command.len() > 20 * 1024);
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let (out, _, done) = c.run("mdwap1p", &command).await;
    assert_eq!(done["exit_status"], 0, "{done}");
    assert_eq!(out, "700\r\n700\r\n");
    assert_eq!(std::fs::read_to_string(tree.join("out.txt")).unwrap(), body);
}

#[tokio::test]
async fn a_login_shell_that_is_not_posix_is_refused_with_22002_naming_it() {
    let sshd = SshdServer::start(SshdOptions::default());
    let entry = ServerEntry {
        username: TCSH_USER.to_owned(),
        extra: Mode::Shell.toml().to_owned(),
        ..ServerEntry::for_sshd("csh-box", &sshd)
    };
    let app = TestApp::builder()
        .server(entry)
        .known_hosts(&sshd.known_hosts_line())
        .spawn()
        .await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let (out, _, res) = c.run("csh-box", "echo should-not-run").await;
    assert_eq!(res["error"]["error"]["code"], 22002, "{res}");
    let detail = res["error"]["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("/usr/bin/tcsh") && detail.contains("POSIX"),
        "{detail}"
    );
    assert_eq!(res["complete"]["reason"], "error");
    assert_eq!(out, "", "nothing of the refused shell is shown");
    // BMX4 is refused the same way
    let mut b = WsClient::connect(&app, "/ws/v1/bmx4").await;
    let (results, _) = batch(&mut b, json!({"server": "csh-box", "commands": ["true"]})).await;
    assert_eq!(results[0]["error"]["code"], 22002, "{:?}", results[0]);
}
