//! The stall watchdog: drops a WebSocket client that stopped reading
//! (30003). Why it lives outside the connection actor, and who owns what,
//! is in [`connections`](crate::connections); here are its two halves:
//! [`Watched`], the body stream that stamps each poll, and the watchdog
//! task ([`spawn_watchdog`]) that acts on stale stamps.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web;
use actix_web::web::Bytes;
use futures_util::Stream;
use pinkpage_actors::ErrorCode;

use crate::connections::{Admission, ConnWatch};
use crate::state::AppState;

/// The most a [`Watched`] body hands the writer at once: the writer asks
/// again once its buffer (32 KiB) has room, so between two polls of a
/// reading client at most this much plus that buffer must drain.
pub const SLICE: usize = 64 * 1024;

/// A WebSocket's body stream, stamping each poll (see the module docs)
/// and holding the connection's place until the body is dropped.
pub struct Watched<S> {
    inner: Pin<Box<S>>,
    /// The rest of a chunk larger than [`SLICE`], handed out first.
    rest: Bytes,
    admission: Admission,
}

impl<S> Watched<S> {
    /// Wraps `inner`, the connection actor's outgoing stream.
    pub fn new(inner: S, admission: Admission) -> Self {
        admission.watch().stamp();
        Watched {
            inner: Box::pin(inner),
            rest: Bytes::new(),
            admission,
        }
    }
}

impl<S, E> Stream for Watched<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.admission.watch().stamp();
        if self.rest.is_empty() {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.rest = chunk,
                other => return other,
            }
        }
        let n = self.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(self.rest.split_to(n))))
    }
}

/// How often the watchdog looks: a quarter of the timeout, at most 1 s,
/// at least 50 ms.
fn check_interval(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Starts the stall watchdog on the current arbiter; it runs as long as
/// the actix system does.
pub fn spawn_watchdog(state: web::Data<AppState>) {
    // A healthy idle connection is polled once per heartbeat, give or take
    // timer slack: never call one stalled before two heartbeats passed,
    // even if the timeout is set barely above the heartbeat.
    let settings = &state.settings();
    let timeout = settings.ws_client_timeout.max(settings.ws_heartbeat * 2);
    actix::spawn(async move {
        let mut tick = tokio::time::interval(check_interval(timeout));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for watch in state.connections.take_stalled(timeout) {
                drop_stalled(&state, &watch, timeout);
            }
        }
    });
}

/// Drops a connection whose output has not drained for `timeout`: stops
/// its tasks, shuts its socket down, logs and audits 30003, and releases
/// its lock once the tasks are done.
fn drop_stalled(state: &web::Data<AppState>, watch: &ConnWatch, timeout: Duration) {
    let code = ErrorCode::WsStalled;
    log::warn!(
        connection_id = watch.id.to_string().as_str(),
        user = &*watch.user,
        code = code.code(),
        stalled_s = timeout.as_secs_f64();
        "websocket output has not drained; dropping the connection"
    );
    let mut event = crate::records::NewAuditEvent::new(watch.id.to_string(), "ws.stalled")
        .by(Some(&watch.user), watch.remote.map(|ip| ip.to_string()));
    event.ended(crate::records::Outcome::Failed, Some(code.code()));
    event.detail = Some(serde_json::json!({
        "code": code.code(),
        "reason": code.message(),
        "stalled_s": timeout.as_secs_f64(),
    }));
    state.journal.audit(event);
    cut_off(state, watch);
}

/// Ends a connection from outside its actor (which may not be polled):
/// stops its tasks, shuts its socket down, and tells the lock it is gone
/// once those tasks are done (bounded by `REVOKE_TIMEOUT`); a shutdown
/// waits for that too. Used for a stalled client and, at shutdown, for a
/// client that did not go after its `shutdown` frame.
pub fn cut_off(state: &web::Data<AppState>, watch: &ConnWatch) {
    let dones = watch.tasks.kill();
    if let Some(socket) = watch.socket().as_ref() {
        // Fails only if the peer is already gone, which is what we want.
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
    super::connection::release_when_done(state, watch.id, dones);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pinkpage_actors::ConnectionId;

    use super::*;
    use crate::connections::Connections;
    use crate::settings::caps::CapSettings;

    fn registry() -> Arc<Connections> {
        Connections::new(CapSettings::default())
    }

    #[tokio::test]
    async fn a_large_chunk_reaches_the_writer_in_slices_whole_and_in_order() {
        use futures_util::StreamExt;
        let reg = registry();
        let adm = reg
            .admit(ConnectionId::new(), "stub", "ana".into(), None, None)
            .unwrap();
        let big: Vec<u8> = (0..(SLICE * 2 + 10)).map(|i| i as u8).collect();
        let chunks = vec![
            Ok::<_, ()>(Bytes::from(big.clone())),
            Ok(Bytes::from_static(b"end")),
        ];
        let mut body = Watched::new(futures_util::stream::iter(chunks), adm);
        let mut sizes = Vec::new();
        let mut out = Vec::new();
        while let Some(Ok(b)) = body.next().await {
            sizes.push(b.len());
            out.extend_from_slice(&b);
        }
        assert_eq!(sizes, [SLICE, SLICE, 10, 3]);
        assert_eq!(&out[..big.len()], &big[..]);
        assert_eq!(&out[big.len()..], b"end");
    }

    #[test]
    fn a_connection_not_polled_past_the_timeout_is_reported_once() {
        let reg = registry();
        let adm = reg
            .admit(ConnectionId::new(), "stub", "ana".into(), None, None)
            .unwrap();
        let fresh = Watched::new(futures_util::stream::empty::<Result<Bytes, ()>>(), adm);
        assert!(reg.take_stalled(Duration::from_secs(60)).is_empty());
        let stalled = reg.take_stalled(Duration::ZERO);
        assert_eq!(stalled.len(), 1);
        assert!(reg.take_stalled(Duration::ZERO).is_empty(), "reported twice");
        drop(fresh);
        assert_eq!(reg.count(), 0);
    }
}
