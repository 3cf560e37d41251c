//! The BMX4 domain (`/ws/v1/bmx4`): batch command runs (SPEC section 4).
//!
//! Layout: [`wire`] holds the frames, [`handlers`] what the connection
//! does with requests and with what its run reports, [`recorder`] the
//! actor that writes the run to the store. This file is the `Domain`
//! impl and the connection's state.
//!
//! Who owns which state, and why no run is finished twice:
//! - The connection owns only its [`TaskSlot`]: at most one run, `Starting`
//!   while the run's row is written, `Running` once the `BatchRunActor`
//!   runs. The slot is taken synchronously when `batch_execute` is
//!   accepted, so a second batch on the same connection gets 50010 even
//!   while the first is being recorded. The connection writes nothing to
//!   the store; it renders frames from what the recorder passes on.
//! - The `BatchRunActor` (engine) owns the work: the workers, their SSH
//!   connections, the counts. It keeps the task contract: `Stop` is
//!   `ctx.stop()`, every message carries its task id, and one `Finished`
//!   comes last, after every remote command was signalled.
//! - The `BatchRecorderActor` owns the run's record: it writes the row,
//!   each result, and the final update, in that order, and is the only
//!   one that writes them. It is the run's client, not the connection's
//!   part, so it outlives a client that leaves: the run's `Finished` is
//!   still stored, with the run's real counts and `cancelled` when the
//!   disconnect stopped it.
//!
//! So the race of two finishers (the connection writing "cancelled" on
//! disconnect while the run's own completion writes its end) cannot
//! happen: there is one writer, and it writes the end once. And since
//! the recorder passes each message on only after storing it,
//! `batch_complete` is sent once the final update is stored: a client
//! that reads the run over REST after `batch_complete` sees all of it.
//!
//! `batch_cancel` and disconnect stop the run's actor; the engine then
//! signals the remote commands (TERM, then KILL), since commands without a
//! PTY survive a closed channel.

mod handlers;
pub mod recorder;
mod state;
pub mod wire;

use pinkpage_actors::task::Done;

pub use self::state::Bmx4;
use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;
pub use wire::{Bmx4Reply, Bmx4Request};

impl Domain for Bmx4 {
    type Request = Bmx4Request;
    const TYPES: &'static [&'static str] = &["batch_execute", "batch_cancel"];
    const WELCOME: &'static str = "Connected to BMX4 WebSocket";
    const NAME: &'static str = "bmx4";
    const PATH: &'static str = "/ws/v1/bmx4";

    fn handle(conn: &mut WsConnection<Self>, req: Bmx4Request, rid: RequestId, ctx: &mut WsCtx<Self>) {
        match req {
            Bmx4Request::BatchExecute(fields) => handlers::batch_execute(conn, fields, rid, ctx),
            Bmx4Request::BatchCancel { run_id } => handlers::batch_cancel(conn, run_id, rid, ctx),
        }
    }

    fn access_changed(conn: &mut WsConnection<Self>, ctx: &mut WsCtx<Self>) {
        handlers::access_changed(conn, ctx);
    }

    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) -> Vec<Done> {
        // The client is gone: stop the run (the engine ends the remote
        // commands; the recorder stores its end). A run still starting is
        // dropped with the connection's futures, and its recorder, left
        // without senders, records it cancelled. BMX4 holds no lock, so
        // there is nothing to wait for here.
        let _ = conn.domain.run.cancel();
        Vec::new()
    }
}
