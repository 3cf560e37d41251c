//! A TCP relay between the daemon and one sshd that can be frozen: while
//! frozen it stops forwarding in both directions without closing anything,
//! which is what a network that drops packets (instead of refusing them)
//! looks like to both ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The relay. Dropping it stops accepting; relayed connections end with
/// the test's runtime.
pub struct FreezableRelay {
    /// The loopback port the daemon connects to.
    pub port: u16,
    frozen: Arc<AtomicBool>,
    thawed: Arc<Notify>,
    task: JoinHandle<()>,
}

impl FreezableRelay {
    /// Relays a free loopback port to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> FreezableRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let thawed = Arc::new(Notify::new());
        let (f, t) = (frozen.clone(), thawed.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, f.clone(), t.clone()));
                tokio::spawn(pipe(sr, cw, f.clone(), t.clone()));
            }
        });
        FreezableRelay {
            port,
            frozen,
            thawed,
            task,
        }
    }

    /// Stops forwarding (bytes already in flight may still arrive).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
        self.thawed.notify_waiters();
    }
}

impl Drop for FreezableRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, holding each chunk while the relay is frozen.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
    thawed: Arc<Notify>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            let woken = thawed.notified();
            if !frozen.load(Ordering::SeqCst) {
                break;
            }
            woken.await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
