//! A TCP relay whose connections can be cut: what a browser sees when the
//! network between it and the daemon breaks (its WebSockets close), while
//! new connections go through again at once. (The harness's
//! `FreezableRelay` holds bytes instead, so nothing ever closes.)

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The relay; dropping it stops accepting and cuts everything.
pub struct CuttableRelay {
    /// The loopback port the browser connects to.
    pub port: u16,
    accept: JoinHandle<()>,
    /// One task per relayed connection (both directions).
    open: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CuttableRelay {
    /// Relays a free loopback port to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> CuttableRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let open: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tasks = open.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let relay = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                tasks.lock().unwrap().push(relay);
            }
        });
        CuttableRelay { port, accept, open }
    }

    /// Closes every connection relayed so far (both ends see them end).
    pub fn cut(&self) {
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for CuttableRelay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
