//! The BMX5 domain (`/ws/v1/bmx5`): SFTP file work and remote scripts
//! (SPEC section 4, BMX5; protocol in docs/bmx5.md).
//!
//! - [`wire`]: the request and reply types;
//! - [`sftp`]: the SFTP requests, run concurrently on this client's pool;
//! - [`script`]: `script_execute` / `script_cancel` and the script actor's
//!   notices;
//! - here: the per-connection state and the dispatch.
//!
//! Per connection it owns:
//! - an `SftpPool` (started with the first SFTP request): one SSH + SFTP
//!   session per server, reused by this client's requests; its actor
//!   closes them after [`pool::DEFAULT_IDLE`] unused and when the client
//!   goes away (stopped in `stopping`);
//! - at most one script run (a `ScriptRunActor`), in [`Bmx5::script`].
//!
//! Replies carry the request's `request_id`. No session lock is needed:
//! BMX5 work is not part of the STUB workflow.
//!
//! [`pool::DEFAULT_IDLE`]: pinkpage_actors::files::pool::DEFAULT_IDLE

mod script;
mod sftp;
mod state;
mod wire;

use pinkpage_actors::task::Done;

pub use self::script::{check_script_name, MAX_SCRIPT_BYTES};
use self::script::{script_cancel, script_execute, ScriptParams};
pub use self::state::Bmx5;
pub use self::wire::{Bmx5Reply, Bmx5Request, INLINE_MAX_BYTES};
use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;

impl Domain for Bmx5 {
    type Request = Bmx5Request;
    const TYPES: &'static [&'static str] = &[
        "sftp_list",
        "sftp_stat",
        "sftp_mkdir",
        "sftp_remove",
        "sftp_rename",
        "sftp_upload",
        "sftp_download",
        "script_execute",
        "script_cancel",
    ];
    const WELCOME: &'static str = "Connected to BMX5 WebSocket";
    const NAME: &'static str = "bmx5";
    const PATH: &'static str = "/ws/v1/bmx5";

    fn handle(conn: &mut WsConnection<Self>, req: Bmx5Request, rid: RequestId, ctx: &mut WsCtx<Self>) {
        match req {
            Bmx5Request::ScriptExecute {
                server,
                script,
                script_name,
                args,
                timeout_s,
                throttle_ms,
            } => script_execute(
                conn,
                ScriptParams {
                    server,
                    script,
                    script_name,
                    args,
                    timeout_s,
                    throttle_ms,
                },
                rid,
                ctx,
            ),
            Bmx5Request::ScriptCancel => script_cancel(conn, rid, ctx),
            sftp_request => sftp::handle(conn, sftp_request, rid, ctx),
        }
    }

    fn access_changed(conn: &mut WsConnection<Self>, ctx: &mut WsCtx<Self>) {
        script::access_changed(conn, ctx);
    }

    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) -> Vec<Done> {
        // The script actor cleans up on its own (its file is removed even
        // though nobody hears the completion); its end row is written here,
        // since nobody hears that either.
        script::audit_cut_off(conn);
        let _ = conn.domain.script.cancel();
        if let Some(pool) = conn.domain.pool.take() {
            pool.stop();
        }
        Vec::new()
    }
}
