//! [`Webssh`]: huashengdun/webssh (`wssh`, a Tornado app on paramiko), the
//! peer the benchmarks measure the daemon against, run on loopback for one
//! benchmark against a harness sshd; and [`WebsshTerminal`], a WebSocket
//! client of one of its terminals.
//!
//! Its protocol, read from its source (`webssh/handler.py`, `worker.py`):
//! a form POST to `/` (`hostname`, `port`, `username`, `password`) makes
//! the SSH connection and a login shell on a PTY (`invoke_shell`) and
//! answers `{"id", "status", "encoding"}`; a WebSocket to `/ws?id=<id>`
//! from the same address within `--delay` (3 s) attaches to it. Input is
//! a text message `{"data": "..."}`; output comes as binary messages of
//! what each channel read returned (at most 32 KiB each).
//!
//! `scripts/test-env.sh` installs it (pinned) with `python3 -m pip`. It is
//! started as `<python> -m webssh.main` (what the `wssh` script runs),
//! `<python>` being the interpreter `python3` on PATH names as
//! `sys.executable` (behind a pyenv shim, the real one, so the process id
//! is the server's), or `$PINKPAGE_WEBSSH_PYTHON`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::sshd::{free_port, SshdServer, TestUser};
use super::ws::FRAME_TIMEOUT;

/// How long `wssh` may take to log that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at a free port (another process may take it first).
const START_ATTEMPTS: usize = 5;
/// What to do when webssh is missing.
const HINT: &str = "run `sudo scripts/test-env.sh` (it installs webssh with pip)";

/// A running `wssh` on 127.0.0.1, allowed to reach one harness sshd.
/// Dropping it kills the process.
pub struct Webssh {
    child: Child,
    port: u16,
    /// The sshd whose host key it trusts (its `--hostfile`).
    sshd_port: u16,
    /// webssh's version (`webssh._version.__version__`).
    pub version: String,
    /// Holds the host key files.
    _dir: tempfile::TempDir,
}

impl Webssh {
    /// Starts `wssh` for `sshd`: host keys checked against sshd's own
    /// (`--policy=reject` with a host file holding only its line, the
    /// system one empty, as the daemon checks its known_hosts), the
    /// encoding given (else each login runs `locale charmap` first), XSRF
    /// cookies off (a form post from a script has none); everything else
    /// its defaults. Panics with a hint when webssh is not installed.
    pub fn start(sshd: &SshdServer) -> Webssh {
        let (python, version) = python();
        let dir = tempfile::tempdir().expect("temp dir");
        let hostfile = dir.path().join("known_hosts");
        std::fs::write(&hostfile, sshd.known_hosts_line() + "\n").expect("write the host file");
        // absent: paramiko reads it as no keys
        let syshostfile = dir.path().join("no_system_known_hosts");
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            match spawn(&python, port, &hostfile, &syshostfile) {
                Ok(child) => {
                    return Webssh {
                        child,
                        port,
                        sshd_port: sshd.port(),
                        version,
                        _dir: dir,
                    }
                }
                Err(log) if attempt < START_ATTEMPTS => {
                    eprintln!("wssh on port {port} did not start; retrying:\n{log}")
                }
                Err(log) => panic!("wssh did not start {START_ATTEMPTS} times:\n{log}"),
            }
        }
        unreachable!()
    }

    /// Its process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Logs the test user in through the form, as its page does, and
    /// attaches a WebSocket to the new terminal; `recv_buffer` sets the
    /// client socket's `SO_RCVBUF` (a client that will stop reading).
    pub async fn open(&self, recv_buffer: Option<u32>) -> WebsshTerminal {
        let user = TestUser::get();
        let form = [
            ("hostname", "127.0.0.1".to_owned()),
            ("port", self.sshd_port.to_string()),
            ("username", user.name.clone()),
            ("password", user.password.expose().to_owned()),
            ("term", "xterm".to_owned()),
        ];
        let reply: serde_json::Value = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/", self.port))
            .form(&form)
            .send()
            .await
            .expect("POST / to wssh")
            .json()
            .await
            .expect("wssh's JSON reply");
        let id = reply["id"]
            .as_str()
            .unwrap_or_else(|| panic!("wssh refused the login: {reply}"));
        let url = format!("ws://127.0.0.1:{}/ws?id={id}", self.port);
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let tcp = socket
            .connect(([127, 0, 0, 1], self.port).into())
            .await
            .expect("connect to wssh");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("wssh's WebSocket handshake");
        WebsshTerminal { ws }
    }
}

impl Drop for Webssh {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One terminal of [`Webssh`], over its WebSocket.
pub struct WebsshTerminal {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WebsshTerminal {
    /// Types `text` (`{"data": text}`).
    pub async fn type_in(&mut self, text: &str) {
        let message = serde_json::json!({ "data": text }).to_string();
        self.ws
            .send(Message::Text(message.into()))
            .await
            .expect("send to wssh");
    }

    /// The next piece of output; panics when the terminal closes or
    /// nothing comes within [`FRAME_TIMEOUT`].
    pub async fn output(&mut self) -> Vec<u8> {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .expect("no output from wssh before the timeout");
            match message {
                Some(Ok(Message::Binary(data))) => return data.to_vec(),
                Some(Ok(Message::Text(text))) => return text.as_bytes().to_vec(),
                Some(Ok(Message::Close(reason))) => panic!("wssh closed the terminal: {reason:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("wssh's WebSocket failed: {e}"),
                None => panic!("wssh's WebSocket ended"),
            }
        }
    }

    /// Closes the WebSocket, which ends the SSH session.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The interpreter that has webssh, and webssh's version.
fn python() -> (String, String) {
    let python = std::env::var("PINKPAGE_WEBSSH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys, webssh._version as v; print(sys.executable); print(v.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; {HINT}"));
    assert!(
        out.status.success(),
        "{python} has no webssh ({}); {HINT}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let (exe, version) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
    (exe.to_owned(), version.to_owned())
}

/// Starts `wssh` on `port` and waits for its "Listening on" line; on
/// failure, what it logged.
fn spawn(python: &str, port: u16, hostfile: &Path, syshostfile: &Path) -> Result<Child, String> {
    let mut child = Command::new(python)
        .args(["-m", "webssh.main", "--address=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg("--policy=reject")
        .arg(format!("--hostfile={}", hostfile.display()))
        .arg(format!("--syshostfile={}", syshostfile.display()))
        // its log stays at `info` (a line per connection, none per byte):
        // the "Listening on" line says when it is ready
        .args(["--xsrf=False", "--encoding=utf-8"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python} -m webssh.main: {e}; {HINT}"));
    // the log goes on being read (and dropped) so wssh never blocks on it
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let listening = format!("Listening on 127.0.0.1:{port}");
    let mut log = String::new();
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(&listening) => return Ok(child),
            Ok(line) => log.push_str(&(line + "\n")),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                return Err(format!("exit: {status:?}\n{log}"));
            }
        }
    }
}
