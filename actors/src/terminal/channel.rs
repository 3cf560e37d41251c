//! What both PTY actors (`shell::SshShellActor`, `operator::OperatorTerminal`)
//! do with their channel: keystrokes and resizes in one ordered queue that
//! one task writes (input sent while connecting waits there), and the
//! channel's output as data, its exit status and a lost session noted on
//! the way.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::error::{AppError, ErrorCode};
use crate::ssh::{ShellEvent, ShellInput, ShellOutput};

/// How many input and resize operations may wait for the channel.
const INPUT_QUEUE: usize = 1024;

/// One operation for the channel, in the order it was asked.
pub(crate) enum InputOp {
    /// Keystrokes or pasted text.
    Write(String),
    /// A new size: columns, rows.
    Resize(u32, u32),
}

/// An empty queue of operations.
pub(crate) fn input_queue() -> (mpsc::Sender<InputOp>, mpsc::Receiver<InputOp>) {
    mpsc::channel(INPUT_QUEUE)
}

/// Queues `op`; 22000 when the queue is full (the server is not reading).
pub(crate) fn enqueue(queue: &mpsc::Sender<InputOp>, op: InputOp) -> Result<(), AppError> {
    queue.try_send(op).map_err(|_| {
        AppError::with_detail(
            ErrorCode::SshCommandFailed,
            "input queue full; the server is not reading",
        )
    })
}

/// Writes what `queue` holds to `writer`, in order, until the queue is
/// closed (`None`) or a write fails (its error).
pub(crate) async fn write_queued(
    writer: &ShellInput,
    queue: &mut mpsc::Receiver<InputOp>,
) -> Option<AppError> {
    while let Some(op) = queue.recv().await {
        let result = match op {
            InputOp::Write(text) => writer.write(text.into_bytes()).await,
            InputOp::Resize(cols, rows) => writer.resize(cols, rows).await,
        };
        if let Err(e) = result {
            return Some(e);
        }
    }
    None
}

/// The data `output` carries; its exit status goes into `exit_status`, and
/// `lost` is set when the session ended under the channel.
pub(crate) fn data_of(
    output: ShellOutput,
    exit_status: Rc<Cell<Option<u32>>>,
    lost: Rc<Cell<bool>>,
) -> impl Stream<Item = Bytes> + Unpin {
    output.into_stream().filter_map(move |event| {
        let data = match event {
            ShellEvent::Output(data) => Some(data),
            ShellEvent::ExitStatus(status) => {
                exit_status.set(Some(status));
                None
            }
            ShellEvent::Lost => {
                lost.set(true);
                None
            }
            ShellEvent::ExitSignal(_) | ShellEvent::Eof | ShellEvent::Closed => None,
        };
        std::future::ready(data)
    })
}
