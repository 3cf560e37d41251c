//! The recording seam: what the engine tells a recording of one PTY
//! ([`PtyRecorder`]), and how a PTY gets one ([`RecorderOpener`]). The
//! daemon implements both (asciicast files and their index); the engine
//! only calls them, at the points where it sees the PTY's traffic:
//!
//! - output as the server sent it, before decoding and throttling, so a
//!   replay has the real timing ([`PtyRecorder::output`]; the future it
//!   returns is the backpressure: the PTY's channel is not read while the
//!   recording has no room);
//! - the keystrokes written to the PTY ([`PtyRecorder::input`]; the
//!   recording decides whether it keeps them);
//! - resizes, and the end with its reason and exit status.
//!
//! Each call takes its event's time itself, when it is made: a recording
//! never stamps an event with the time it got round to writing it.
//!
//! A recording is opened before its PTY connects, so a recording that
//! cannot be started refuses the PTY before anything runs (fail closed).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::LocalBoxStream;
use futures_util::StreamExt;

use super::info::PtyInfo;
use crate::error::AppError;
use crate::server::ServerSpec;
use crate::ssh::PtyRequest;

/// How a recorded PTY ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingEnd {
    /// Why (`exit`, `cancelled`, `timeout`, `error`, `closed`, `idle`, ...:
    /// the PTY's own reason names).
    pub reason: String,
    /// The remote exit status, when it exited.
    pub exit_status: Option<u32>,
}

/// One PTY's recording. Shared between the actor that reads the PTY and
/// the task that pumps its output; every method is cheap and never waits,
/// except [`output`](Self::output)'s future.
pub trait PtyRecorder: Send + Sync + 'static {
    /// Output as the server sent it. Resolves once the recording has taken
    /// it (at once, unless its buffer is full: then when the disk has
    /// caught up). A recording that failed takes everything at once.
    fn output(&self, bytes: Bytes) -> BoxFuture<'static, ()>;
    /// Keystrokes written to the PTY.
    fn input(&self, text: &str);
    /// The PTY's new size.
    fn resize(&self, cols: u32, rows: u32);
    /// The PTY ended; nothing follows. A recording dropped without an end
    /// ends as `ended`.
    fn end(&self, end: RecordingEnd);
}

/// A PTY's recording, as the engine carries it.
#[derive(Clone)]
pub struct Recorder(pub Arc<dyn PtyRecorder>);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl std::ops::Deref for Recorder {
    type Target = dyn PtyRecorder;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// Starts the recording of a PTY about to open.
pub trait RecorderOpener: Send + Sync + 'static {
    /// The recording of the PTY `info` on `server`, opened with `pty`:
    /// `Ok(None)` when it is not to be recorded (the server says so), an
    /// error when it cannot be recorded and the PTY must not open.
    fn open(
        &self,
        info: &PtyInfo,
        server: &ServerSpec,
        pty: &PtyRequest,
    ) -> Result<Option<Recorder>, AppError>;
}

/// `source`, a PTY's output as the server sent it, passed through its
/// recording when it has one: each chunk is handed to
/// [`PtyRecorder::output`] and goes on once the recording took it, so
/// while the recording has no room the channel is not read.
pub fn recorded(
    source: LocalBoxStream<'static, Bytes>,
    recorder: Option<Recorder>,
) -> LocalBoxStream<'static, Bytes> {
    match recorder {
        Some(recorder) => source
            .then(move |data| {
                let taken = recorder.output(data.clone());
                async move {
                    taken.await;
                    data
                }
            })
            .boxed_local(),
        None => source,
    }
}
