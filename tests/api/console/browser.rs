//! Headless Chromium for the console tests: ONE chromedriver for the whole
//! test binary (started on first use), each test a fresh browser session
//! with a fresh profile (two users = two sessions), and tests taking turns
//! ([`turn`]) so the 2-core machine runs one browser at a time.
//!
//! chromedriver runs under a small shell that waits on a pipe from this
//! process: when the test binary exits (however it exits) the pipe closes
//! and the shell kills its process group, chromedriver and any Chromium
//! with it.
//!
//! Waiting is on page state, never on time: [`Browser::wait`] polls a
//! JavaScript predicate, bounded, and fails naming what never happened.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::sync::{Mutex as TurnLock, MutexGuard};

use crate::support::daemon::{Identity, TestApp};
use crate::support::poll::eventually_within;
use crate::support::sshd::free_port;

/// How long a page condition may take: generous for a loaded 2-core
/// machine running the daemon, sshd and Chromium at once.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// Chromium's flags: headless, and without the background networking that
/// stalls it on a closed network.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,720",
];

/// The chromedriver of this test run.
struct Driver {
    port: u16,
    /// Kept open: its end tells the wrapper shell to stop chromedriver.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static DRIVER: OnceLock<Driver> = OnceLock::new();
static TURN: TurnLock<()> = TurnLock::const_new(());

fn driver() -> &'static Driver {
    DRIVER.get_or_init(|| {
        let port = free_port();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(
                // the group (chromedriver, the browsers it starts, this
                // shell) ends when our end of the pipe closes
                "chromedriver --port=\"$1\" --log-level=SEVERE >/dev/null 2>&1 & read _; trap '' TERM; kill -TERM 0; wait",
            )
            .arg("sh")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .expect("start chromedriver (scripts/test-env.sh installs chromium-driver)");
        let stdin = child.stdin.take().expect("wrapper stdin");
        Driver {
            port,
            _stdin: Mutex::new(stdin),
            _child: Mutex::new(child),
        }
    })
}

/// Waits for this test's turn with the browser; hold the guard for the
/// whole test.
pub async fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().await
}

/// Where screenshots go: `<target>/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // <target>/debug/deps/api-<hash>
    let target = exe
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("console-screenshots")
}

/// One browser session (its own Chromium, its own profile) on a daemon.
pub struct Browser {
    client: Client,
    base: String,
    session: Option<String>,
    /// The Chromium profile; removed on drop.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A new session at 1280x720, not yet on any page.
    pub async fn open(app: &TestApp) -> Browser {
        let driver = driver();
        let url = format!("http://127.0.0.1:{}", driver.port);
        eventually_within(PAGE_WAIT, "chromedriver listens", async || {
            std::net::TcpStream::connect(("127.0.0.1", driver.port)).is_ok()
        })
        .await;
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "unhandledPromptBehavior": "ignore",
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&url)
            .await
            .expect("a chromedriver session");
        let session = client.session_id().await.ok().flatten();
        client.set_window_size(1280, 720).await.expect("window size");
        Browser {
            client,
            base: app.url(""),
            session,
            _profile: profile,
        }
    }

    /// A fresh browser on `app`, signed in as `who`.
    pub async fn signed_in(app: &TestApp, who: &Identity) -> Browser {
        let browser = Browser::open(app).await;
        browser.sign_in(who).await;
        browser
    }

    /// Makes every later [`Browser::goto`] go through `127.0.0.1:port` (a
    /// relay in front of the daemon) instead of the daemon's own port.
    pub fn via_port(mut self, port: u16) -> Browser {
        self.base = format!("http://127.0.0.1:{port}");
        self
    }

    /// Opens `path` of the daemon.
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    /// Opens the console signed out and waits for its sign-in form.
    pub async fn open_sign_in(&self) {
        self.goto("/ui/").await;
        self.wait("the sign-in form", "!document.getElementById('signin').hidden")
            .await;
    }

    /// Signs `who` in through the sign-in page and waits for the console.
    pub async fn sign_in(&self, who: &Identity) {
        self.open_sign_in().await;
        self.fill("#signin-name", &who.name).await;
        self.fill("#signin-password", &who.password).await;
        self.click("#signin-submit").await;
        self.wait(
            "the console after signing in",
            "!document.getElementById('app').hidden && document.getElementById('conn-state').dataset.state === 'open'",
        )
        .await;
    }

    /// Takes the session lock from the top bar and waits until it is held.
    pub async fn take_lock(&self) {
        self.click("#take-lock").await;
        self.wait_text("#lock-text", "held by you").await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.expect("execute script")
    }

    /// Polls the JavaScript expression `predicate` until it is truthy and
    /// returns its value; fails naming `what` and the last value seen.
    pub async fn wait(&self, what: &str, predicate: &str) -> Value {
        self.wait_within(PAGE_WAIT, what, predicate).await
    }

    /// [`Browser::wait`] with its own bound, for work known to be long.
    pub async fn wait_within(&self, within: Duration, what: &str, predicate: &str) -> Value {
        let script = format!("try {{ return ({predicate}); }} catch (e) {{ return null; }}");
        eventually_within(within, what, async || {
            let v = self.js(&script, vec![]).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        })
        .await
    }

    /// Runs `script` asynchronously: it ends by calling the callback that
    /// is its last argument, with the value returned here.
    pub async fn js_async(&self, script: &str) -> Value {
        self.js_async_with(script, vec![]).await
    }

    /// [`Browser::js_async`] with arguments (`arguments[0]`, ...; the
    /// callback comes after them).
    pub async fn js_async_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute_async(script, args)
            .await
            .expect("execute async script")
    }

    /// The text of the first element matching `css` ("" when none).
    pub async fn text(&self, css: &str) -> String {
        self.js(
            "const el = document.querySelector(arguments[0]); return el ? el.textContent : '';",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until the element matching `css` exists and contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let predicate = format!(
            "(() => {{ const el = document.querySelector({css}); return el && el.textContent.includes({needle}) ? el.textContent : null; }})()",
            css = json!(css),
            needle = json!(needle)
        );
        self.wait(&format!("`{needle}` in {css}"), &predicate)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the element matching `css`, once it exists. A list the page
    /// re-renders (Sessions refreshes every few seconds) can replace the
    /// element between finding and clicking it: a stale element is found
    /// again, a few times, as a person's second click would.
    pub async fn click(&self, css: &str) {
        for attempt in 1.. {
            self.wait(
                &format!("{css} exists"),
                &format!("document.querySelector({})", json!(css)),
            )
            .await;
            let clicked = match self.client.find(Locator::Css(css)).await {
                Ok(el) => el.click().await.map(drop),
                Err(e) => Err(e),
            };
            match clicked {
                Ok(()) => return,
                Err(e)
                    if attempt < 5
                        && (e.to_string().contains("stale element")
                            || e.to_string().contains("no such element")) =>
                {
                    continue
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Types `text` into the element matching `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.client.find(Locator::Css(css)).await.expect("element");
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    /// Sends keys to the element matching `css` as they are (no clearing).
    pub async fn keys(&self, css: &str, keys: &str) {
        let el = self.client.find(Locator::Css(css)).await.expect("element");
        el.send_keys(keys).await.expect("send keys");
    }

    /// Picks `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.wait(
            &format!("option {value} in {css}"),
            &format!(
                "document.querySelector({}).querySelector('option[value=' + JSON.stringify({}) + ']')",
                json!(css),
                json!(value)
            ),
        )
        .await;
        self.client
            .find(Locator::Css(css))
            .await
            .expect("select")
            .select_by_value(value)
            .await
            .expect("select value");
    }

    /// Resizes the window (the console must stay usable when narrow).
    pub async fn set_size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("window size");
    }

    /// Makes the page see `prefers-color-scheme: dark` (Chrome DevTools'
    /// media emulation, through chromedriver's CDP passthrough).
    pub async fn prefer_dark(&self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let id = self.session.as_deref().expect("a session id");
        let body = json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        })
        .to_string();
        let port = driver().port;
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("chromedriver");
        let request = format!(
            "POST /session/{id}/goog/cdp/execute HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes()).await.expect("send");
        // the status line is all that is needed (chromedriver may keep the
        // connection open whatever `Connection` says)
        let mut head = [0u8; 64];
        let n = tokio::time::timeout(PAGE_WAIT, conn.read(&mut head))
            .await
            .expect("chromedriver answers")
            .expect("read");
        let head = String::from_utf8_lossy(&head[..n]);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }

    /// Saves a screenshot as `<target>/console-screenshots/<name>.png` and
    /// returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// How many pixels of each pixel row of the element matching `css`
    /// differ from its background (its most common colour): the ink of
    /// each line, top to bottom, from a screenshot of the element as
    /// drawn. The PNG is decoded by the page itself (a data: image on a
    /// canvas), so the test needs no image library.
    pub async fn ink_rows(&self, css: &str) -> Vec<u64> {
        use base64::Engine as _;
        let png = self
            .client
            .find(Locator::Css(css))
            .await
            .expect("element")
            .screenshot()
            .await
            .expect("element screenshot");
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        let rows = self
            .js_async_with(
                "const [b64, done] = arguments;
                 const img = new Image();
                 img.onload = () => {
                   const c = document.createElement('canvas');
                   c.width = img.width; c.height = img.height;
                   const g = c.getContext('2d');
                   g.drawImage(img, 0, 0);
                   const px = g.getImageData(0, 0, c.width, c.height).data;
                   const count = new Map();
                   for (let i = 0; i < px.length; i += 4) {
                     const k = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
                     count.set(k, (count.get(k) || 0) + 1);
                   }
                   const bg = [...count.entries()].sort((a, b) => b[1] - a[1])[0][0];
                   const rows = [];
                   for (let y = 0; y < c.height; y++) {
                     let ink = 0;
                     for (let x = 0; x < c.width; x++) {
                       const i = (y * c.width + x) * 4;
                       const k = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
                       if (k !== bg) ink++;
                     }
                     rows.push(ink);
                   }
                   done(rows);
                 };
                 img.onerror = () => done(null);
                 img.src = 'data:image/png;base64,' + b64;",
                vec![b64.into()],
            )
            .await;
        serde_json::from_value(rows).expect("ink per pixel row")
    }

    /// Ends the session (Chromium quits).
    pub async fn close(mut self) {
        self.session = None;
        let client = self.client.clone();
        let _ = client.close().await;
    }
}

impl Drop for Browser {
    /// A test that failed half way still ends its Chromium: a plain
    /// blocking DELETE of the session, which needs no runtime.
    fn drop(&mut self) {
        let Some(id) = self.session.take() else { return };
        let Some(driver) = DRIVER.get() else { return };
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", driver.port)) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                conn,
                "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = std::io::Read::read(&mut conn, &mut [0u8; 512]);
        }
    }
}
