//! Plain TCP stand-ins for health tests: a port that accepts and stays
//! silent, and one that answers with an SSH banner and can be stopped and
//! started again on the same port.

use std::net::TcpListener as StdListener;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A port that accepts connections and never says a word: what a hung
/// service, or a proxy in front of a dead one, looks like to a health check.
///
/// The accepting thread holds every connection and lives until the test
/// binary exits; it costs one thread and a few sockets.
pub struct SilentListener {
    /// The bound loopback port.
    pub port: u16,
}

impl SilentListener {
    /// Binds a free loopback port and starts accepting.
    pub fn start() -> SilentListener {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind a silent listener");
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => held.push(conn),
                    Err(_) => break,
                }
            }
        });
        SilentListener { port }
    }
}

/// A port that greets every connection with an SSH 2 banner, as sshd does,
/// and nothing more. Dropping it closes the port.
pub struct BannerListener {
    /// The bound loopback port.
    pub port: u16,
    task: JoinHandle<()>,
}

impl BannerListener {
    /// Binds a free loopback port.
    pub async fn start() -> BannerListener {
        BannerListener::start_on(0).await
    }

    /// Binds `port` (again, after a stop).
    pub async fn start_on(port: u16) -> BannerListener {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind a banner listener");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                let _ = conn.write_all(b"SSH-2.0-PinkPageTest_1.0\r\n").await;
                held.push(conn);
            }
        });
        BannerListener { port, task }
    }

    /// Closes the port and waits until it is closed.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for BannerListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
