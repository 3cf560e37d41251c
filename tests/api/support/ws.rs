//! A WebSocket test client: JSON frames in and out, every wait bounded.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::daemon::TestApp;

/// The longest any single expected frame may take to arrive.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected client that has read its welcome message.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The welcome frame.
    pub welcome: Value,
    /// The server-made connection id.
    pub id: String,
}

impl WsClient {
    /// Connects to `path` as the test admin and reads the welcome frame.
    pub async fn connect(app: &TestApp, path: &str) -> WsClient {
        let token = app.admin_token.clone().expect("the test admin's token");
        WsClient::connect_with_token(app, path, &token).await
    }

    /// Connects to `path` with the API token `token`.
    pub async fn connect_with_token(app: &TestApp, path: &str, token: &str) -> WsClient {
        let headers = [("authorization".to_owned(), format!("Bearer {token}"))];
        let stream = WsClient::open(app, path, &headers)
            .await
            .unwrap_or_else(|e| panic!("websocket connect: {e}"));
        WsClient::welcomed(stream).await
    }

    /// Opens a raw WebSocket to `path` with extra request `headers`;
    /// the error is the refusal (for the access tests).
    pub async fn open(
        app: &TestApp,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let config = WebSocketConfig::default()
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let mut request = app.ws_url(path).into_client_request().expect("request");
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        tokio_tungstenite::connect_async_with_config(request, Some(config), false)
            .await
            .map(|(stream, _)| stream)
    }

    /// Connects to `path` as the test admin over a socket with a tiny
    /// receive buffer: a client that can stop reading (the tests of the
    /// stall watchdog), whose unread output backs up into the daemon at
    /// once. It reads only when a test calls `recv`.
    pub async fn connect_slow_reader(app: &TestApp, path: &str) -> WsClient {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let token = app.admin_token.clone().expect("the test admin's token");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        // the kernel doubles it and keeps a floor; still a few KiB
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = socket
            .connect(([127, 0, 0, 1], app.port).into())
            .await
            .expect("connect");
        let mut request = app.ws_url(path).into_client_request().expect("request");
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (stream, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
            .await
            .expect("websocket handshake");
        WsClient::welcomed(stream).await
    }

    /// Wraps an open stream and reads its welcome frame.
    pub async fn welcomed(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> WsClient {
        let mut client = WsClient {
            stream,
            welcome: Value::Null,
            id: String::new(),
        };
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client.id = welcome["connection_id"].as_str().unwrap().to_owned();
        client.welcome = welcome;
        client
    }

    /// Connects to the STUB endpoint.
    pub async fn stub(app: &TestApp) -> WsClient {
        WsClient::connect(app, "/ws/v1/stub").await
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// The next JSON frame (pings are answered by the library).
    pub async fn recv(&mut self) -> Value {
        self.try_recv(FRAME_TIMEOUT)
            .await
            .expect("no frame before the timeout")
    }

    /// The next JSON frame within `wait`, or `None` (also when closed).
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match msg {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).expect("JSON frame")),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Reads frames until one of type `kind`; returns it and those before.
    pub async fn recv_until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// The codes of the error frames that arrive, up to and including
    /// `code`, each within `wait` of the last; panics when a frame of type
    /// `not` comes first (the work succeeded after all) or nothing comes.
    pub async fn error_codes_until(&mut self, code: u64, not: &str, wait: Duration) -> Vec<u64> {
        let mut codes = Vec::new();
        while !codes.contains(&code) {
            match self.try_recv(wait).await {
                Some(f) if f["type"] == "error" => codes.push(f["error"]["code"].as_u64().unwrap_or(0)),
                Some(f) => assert_ne!(f["type"], not, "no {code} before {not}: {f}"),
                None => panic!("no {code} within {wait:?} of the last frame; errors so far {codes:?}"),
            }
        }
        codes
    }

    /// Reads frames until an `error`; panics on anything else but
    /// broadcasts, which are skipped.
    pub async fn expect_error(&mut self) -> Value {
        loop {
            let frame = self.recv().await;
            match frame["type"].as_str() {
                Some("error") => return frame,
                Some("session_status") | Some("server_health") => continue,
                _ => panic!("expected an error, got {frame}"),
            }
        }
    }

    /// Reads frames until an `error`, skipping output and broadcasts;
    /// panics on a command's completion first.
    pub async fn expect_error_skipping_output(&mut self) -> Value {
        loop {
            let frame = self.recv().await;
            match frame["type"].as_str() {
                Some("error") => return frame,
                Some("ssh_command_complete") => panic!("expected an error, got {frame}"),
                _ => continue,
            }
        }
    }

    /// Sends `frame` and returns the first reply of type `kind` (skipping
    /// broadcasts); panics on an error frame.
    pub async fn request(&mut self, frame: Value, kind: &str) -> Value {
        self.send(frame).await;
        loop {
            let reply = self.recv().await;
            if reply["type"] == kind {
                return reply;
            }
            assert_ne!(reply["type"], "error", "{reply}");
        }
    }

    /// Sends `frame` and returns its reply: the first frame of type `kind`,
    /// or an error frame (for tests that check both outcomes).
    pub async fn ask(&mut self, frame: Value, kind: &str) -> Value {
        self.send(frame).await;
        loop {
            let reply = self.recv().await;
            if reply["type"] == kind || reply["type"] == "error" {
                return reply;
            }
        }
    }

    /// Takes the lock.
    pub async fn start_session(&mut self) {
        self.request(serde_json::json!({"type": "start_session"}), "session_started")
            .await;
    }

    /// Runs `command` on `server` and collects its output until completion:
    /// (all output text, number of ssh_output frames, the completion).
    pub async fn run(&mut self, server: &str, command: &str) -> (String, usize, Value) {
        self.send(serde_json::json!({"type": "ssh_command", "server": server, "command": command}))
            .await;
        self.collect_until_complete().await
    }

    /// Collects `ssh_output` until `ssh_command_complete`: the output, the
    /// number of frames it came in, and the completion.
    pub async fn collect_until_complete(&mut self) -> (String, usize, Value) {
        let (frames, done) = self.output_frames_until_complete().await;
        (frames.concat(), frames.len(), done)
    }

    /// Collects the data of each `ssh_output` frame, one string per frame,
    /// until `ssh_command_complete` (returned second; after an error, both
    /// as `{"error", "complete"}`).
    pub async fn output_frames_until_complete(&mut self) -> (Vec<String>, Value) {
        let mut frames = Vec::new();
        loop {
            let f = self.recv().await;
            match f["type"].as_str() {
                Some("ssh_output") => frames.push(f["data"].as_str().unwrap().to_owned()),
                Some("ssh_command_complete") => return (frames, f),
                Some("error") => {
                    // an error is followed by the completion
                    let (complete, _) = self.recv_until("ssh_command_complete").await;
                    return (frames, serde_json::json!({"error": f, "complete": complete}));
                }
                _ => {}
            }
        }
    }

    /// Reads output until `needle` has appeared.
    pub async fn wait_for_output(&mut self, needle: &str) -> String {
        let mut out = String::new();
        while !out.contains(needle) {
            let f = self.recv().await;
            if f["type"] == "ssh_output" {
                out.push_str(f["data"].as_str().unwrap());
            }
            assert_ne!(
                f["type"], "ssh_command_complete",
                "finished before {needle:?}: {out}"
            );
        }
        out
    }

    /// Reads until the server closes; returns the close frame's code and
    /// reason (panics if the connection ends without one, or stays open).
    pub async fn recv_close(&mut self) -> (u16, String) {
        loop {
            match tokio::time::timeout(FRAME_TIMEOUT, self.stream.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return (frame.code.into(), frame.reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) => return (1005, String::new()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("connection failed before a close frame: {e}"),
                Ok(None) => panic!("connection ended without a close frame"),
                Err(_) => panic!("still open after {FRAME_TIMEOUT:?}"),
            }
        }
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Drops the socket without a close frame.
    pub fn into_raw(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.stream
    }

    /// Wraps a stream whose welcome was already read (one taken apart
    /// with [`WsClient::into_raw`]).
    pub fn from_raw(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> WsClient {
        WsClient {
            stream,
            welcome: Value::Null,
            id: String::new(),
        }
    }
}
