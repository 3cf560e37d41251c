//! The BMX5 connection's state ([`Bmx5`]: its SFTP pool, at most one
//! script). A leaf: the handlers import it, it imports none of them.

use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::task::slot::TaskSlot;

use crate::ws::protocol::RequestId;

/// What a connection keeps about its script run.
pub(super) struct ScriptTask {
    pub(super) server: String,
    /// Inline text or the script's name, for the audit trail.
    pub(super) label: String,
    /// The request that started it, answered on completion.
    pub(super) rid: RequestId,
}

/// Per-connection BMX5 state.
#[derive(Default)]
pub struct Bmx5 {
    /// This client's SFTP sessions; `None` until the first SFTP request.
    pub(super) pool: Option<SftpPool>,
    /// At most one script per connection.
    pub(super) script: TaskSlot<ScriptTask>,
    /// The future reading (and, under a `review` rule, holding) the
    /// script before it starts: cancelled with the script, which drops
    /// its hold (the approvers' queue loses it at once).
    pub(super) starting: Option<actix::SpawnHandle>,
}
