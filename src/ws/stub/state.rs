//! The STUB connection's state ([`Stub`]: the lock's grant, the one task
//! slot, the PTY size) and the small helpers every STUB handler shares. A
//! leaf: the handlers import it, it imports none of them.

use pinkpage_actors::lock::Grant;
use pinkpage_actors::task::live::LiveTasks;
use pinkpage_actors::task::slot::TaskSlot;
use pinkpage_actors::task::{TaskHandle, TaskId};
use pinkpage_actors::terminal::shell::SshShellActor;
use pinkpage_actors::AppError;

use crate::ws::protocol::RequestId;

/// What a connection keeps about its running task.
pub(super) struct StubTask {
    /// The request that started it, answered by its frames.
    pub(super) rid: RequestId,
    /// What it is.
    pub(super) kind: TaskKind,
}

pub(super) enum TaskKind {
    /// `ssh_command`.
    Shell {
        /// For input and resizes.
        addr: actix::Addr<SshShellActor>,
        server: String,
        command: String,
    },
    /// `scp_transfer`.
    Transfer { name: String },
    /// `workflow_run` by a connection that holds the lock: the run works
    /// under this connection's lock, so it is this connection's task.
    Workflow,
}

/// Per-connection STUB state. Owned by the connection actor alone.
pub struct Stub {
    /// Held while this connection owns the session lock.
    pub(super) grant: Option<Grant>,
    /// The highest lock epoch revoked from this connection. A grant's
    /// reply can reach the actor after the revocation of that very grant
    /// (actix handles the mailbox before spawned futures): such a grant is
    /// never adopted.
    pub(super) revoked_through: u64,
    /// At most one task per connection.
    pub(super) task: TaskSlot<StubTask>,
    /// Last size from `resize` (80x24 until then).
    pub(super) pty: (u32, u32),
    /// An `end_session` is stopping the task: new tasks are refused (50008)
    /// until the lock is released, so none starts under a lock about to go.
    pub(super) ending: bool,
}

impl Default for Stub {
    fn default() -> Self {
        Stub {
            grant: None,
            revoked_through: 0,
            task: TaskSlot::default(),
            pty: (80, 24),
            ending: false,
        }
    }
}

impl Stub {
    /// 50008 unless this connection holds the lock and is not ending it.
    pub(super) fn require_lock(&self) -> Result<(), AppError> {
        if self.ending {
            return Err(AppError::with_detail(
                pinkpage_actors::ErrorCode::ResourceLocked,
                "the session is ending",
            ));
        }
        if self.grant.is_none() {
            return Err(AppError::with_detail(
                pinkpage_actors::ErrorCode::ResourceLocked,
                "this connection does not hold the session lock; send start_session first",
            ));
        }
        Ok(())
    }

    /// Puts a task that was just started in the slot (checked free in the
    /// same step) and in the connection's live tasks (which the lock and
    /// the stall watchdog stop directly); should either refuse it, the
    /// task is stopped again. The live set refuses once the lock was taken
    /// away (its `LockRevoked` may not be handled yet) or the connection
    /// is being dropped.
    pub(super) fn occupy(
        &mut self,
        live: &LiveTasks,
        task_id: TaskId,
        task: StubTask,
        handle: TaskHandle,
    ) -> Result<(), AppError> {
        if live.track(&handle).is_err() {
            let _ = handle.stop();
            return Err(AppError::with_detail(
                pinkpage_actors::ErrorCode::ResourceLocked,
                "the session lock was taken away",
            ));
        }
        self.task.occupy(task_id, task, handle).map_err(|(e, handle)| {
            let _ = handle.stop();
            e
        })
    }
}

pub(super) fn mailbox(e: actix::MailboxError) -> AppError {
    AppError::with_detail(
        pinkpage_actors::ErrorCode::Internal,
        format!("actor unavailable: {e}"),
    )
}

pub(super) fn flatten<T>(res: Result<Result<T, AppError>, actix::MailboxError>) -> Result<T, AppError> {
    res.map_err(mailbox)?
}
