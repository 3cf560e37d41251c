//! The BMX4 connection's state: at most one run ([`Bmx4`]). A leaf: the
//! handlers import it, it imports none of them.

use pinkpage_actors::task::slot::TaskSlot;

use crate::ws::protocol::RequestId;

/// What the connection keeps about its run.
pub(super) struct RunInfo {
    /// The run's id (for `batch_cancel` and the frames).
    pub(super) run_id: String,
    /// The `batch_execute` request, answered by every frame of the run.
    pub(super) rid: RequestId,
    /// The servers it runs on (to tell "no server reachable", and to judge
    /// it again when access changes).
    pub(super) servers: Vec<String>,
}

/// Per-connection BMX4 state.
#[derive(Default)]
pub struct Bmx4 {
    /// At most one run per connection.
    pub(super) run: TaskSlot<RunInfo>,
}
