//! BMX5 scripts: `script_execute` and `script_cancel`, and the notices of
//! the `ScriptRunActor` running a script (started, output, finished).
//!
//! A connection runs at most one script, in [`Bmx5::script`](super::Bmx5)
//! (a [`TaskSlot`]): the slot is taken synchronously when `script_execute`
//! is accepted, so two racing requests cannot both start (the second gets
//! 50010). The script actor follows the task contract
//! (`pinkpage_actors::task`): its file is removed even when nobody hears
//! the completion.

use actix::{ActorFutureExt, AsyncContext, Handler, WrapFuture};
use pinkpage_actors::files::script::{
    ScriptCompletion, ScriptMessage, ScriptNotice, ScriptRequest, ScriptRunActor,
};
use pinkpage_actors::policy::CommandCheck;
use pinkpage_actors::pty::book::{PtyKind, PtyTag};
use pinkpage_actors::task::slot::Cancel;
use pinkpage_actors::task::{Pending, TaskEvent};
use pinkpage_actors::terminal::shell::FinishReason;
use pinkpage_actors::{AppError, ErrorCode};

use super::state::{Bmx5, ScriptTask};
use super::wire::Bmx5Reply;
use crate::request::{ServerRef, ThrottleMs, TimeoutS};
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

/// Largest named script read from the scripts directory.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// `script_execute`'s fields.
pub(super) struct ScriptParams {
    pub(super) server: String,
    pub(super) script: Option<String>,
    pub(super) script_name: Option<String>,
    pub(super) args: Vec<String>,
    pub(super) timeout_s: Option<f64>,
    pub(super) throttle_ms: Option<u64>,
}

/// A script name is a plain, visible file name: no path, no `..`.
pub fn check_script_name(name: &str) -> Result<(), AppError> {
    let bad = |why: &str| {
        Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("script_name {name:?} {why}; give the plain name of a file in PINKPAGE_SCRIPTS_DIR"),
        ))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("contains a path separator");
    }
    if name.contains("..") {
        return bad("contains '..'");
    }
    if name.starts_with('.') {
        return bad("is hidden");
    }
    if name.contains('\0') || name.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    Ok(())
}

pub(super) fn script_execute(
    conn: &mut WsConnection<Bmx5>,
    p: ScriptParams,
    rid: RequestId,
    ctx: &mut WsCtx<Bmx5>,
) {
    if conn.domain.script.is_busy() {
        let e = AppError::with_detail(
            ErrorCode::TaskAlreadyRunning,
            "a script is running: cancel it or wait for script_complete",
        );
        return conn.send_error(ctx, &e, &rid);
    }
    let invalid = |m: String| AppError::with_detail(ErrorCode::Validation, m);
    let checked = (|| {
        let source = match (&p.script, &p.script_name) {
            (Some(text), None) => ScriptSource::Inline(text.clone()),
            (None, Some(name)) => {
                check_script_name(name)?;
                ScriptSource::Named(name.clone())
            }
            _ => return Err(invalid("give exactly one of script and script_name".into())),
        };
        if p.args.iter().any(|a| a.contains('\0')) {
            return Err(invalid("args must not contain NUL".into()));
        }
        let timeout = TimeoutS::parse(p.timeout_s)?.map(TimeoutS::duration);
        let throttle = ThrottleMs::parse(p.throttle_ms, conn.state.settings().throttle)?.duration();
        let spec = ServerRef::resolve(&conn.state.settings(), &conn.principal, &p.server)?.into_spec();
        Ok((source, timeout, throttle, spec))
    })();
    let (source, timeout, throttle, spec) = match checked {
        Ok(v) => v,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    let label = match &source {
        ScriptSource::Inline(_) => "(inline)".to_owned(),
        ScriptSource::Named(n) => n.clone(),
    };
    let (server_name, script_label) = (p.server.clone(), label.clone());
    // Reserve the slot before awaiting anything.
    let reserved = conn.domain.script.reserve(ScriptTask {
        server: p.server.clone(),
        label,
        rid: rid.clone(),
    });
    let task_id = match reserved {
        Ok(id) => id,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    let scripts_dir = conn.state.settings().scripts_dir.clone();
    let args = p.args;
    let (rid_for_rules, spec_for_rules) = (rid.clone(), spec.clone());
    let starting = async move {
        match source {
            ScriptSource::Inline(text) => Ok(text.into_bytes()),
            ScriptSource::Named(name) => read_named_script(&scripts_dir, &name).await,
        }
    }
    .into_actor(conn)
    .then(move |script, conn, ctx| {
        // the command rules read the script as text: refused, it never
        // leaves the daemon; held, it waits here with its slot taken
        let held = script.and_then(|script| {
            let text = String::from_utf8_lossy(&script);
            let held = conn.rules_telling(&rid_for_rules, ctx).check(&spec_for_rules, &text)?;
            Ok((script, held))
        });
        async move {
            let (script, held) = held?;
            if let Some(gate) = held {
                gate.await?;
            }
            Ok(script)
        }
        .into_actor(conn)
    })
    .map(move |script: Result<Vec<u8>, AppError>, conn, ctx| {
        conn.domain.starting = None;
        let script = match script {
            Ok(s) => s,
            Err(e) => {
                conn.domain.script.abort_start(task_id);
                return conn.send_error(ctx, &e, &rid);
            }
        };
        let listed = PtyTag::new(
            &conn.state.ptys,
            PtyKind::Script,
            conn.principal.user.clone(),
            &server_name,
            &script_label,
        )
        .recorded(&spec, &pinkpage_actors::files::script::script_pty());
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) => {
                conn.domain.script.abort_start(task_id);
                return conn.send_error(ctx, &e, &rid);
            }
        };
        let pty_id = listed.info.pty_id.to_string();
        let request = ScriptRequest {
            server: spec,
            ssh: conn.state.ssh.clone(),
            temp_files: conn.state.temp_files.clone(),
            script,
            args: args.clone(),
            timeout,
            throttle,
            listed: Some(listed),
        };
        if conn.domain.script.info(task_id).is_none() {
            return; // cancelled while the script was read: already answered
        }
        let (reporter, handle) = Pending::new(task_id, ctx.address().recipient()).split();
        let addr = actix::Actor::start(ScriptRunActor::new(request, reporter));
        if conn
            .domain
            .script
            .attach(task_id, handle(addr.recipient()))
            .is_err()
        {
            return;
        }
        let Some(task) = conn.domain.script.info(task_id) else {
            return;
        };
        let mut event = conn.audit_event("script.start");
        event.server = Some(task.server.clone());
        event.command = Some(task.label.clone());
        event.detail = Some(
            serde_json::json!({"args": args, "timeout_s": timeout.map(|t| t.as_secs_f64()), "pty_id": pty_id}),
        );
        conn.state.journal.audit(event);
    });
    conn.domain.starting = Some(ctx.spawn(starting));
}

enum ScriptSource {
    Inline(String),
    Named(String),
}

async fn read_named_script(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, AppError> {
    let path = dir.join(name);
    let meta = tokio::fs::metadata(&path).await.map_err(|e| {
        AppError::with_detail(
            ErrorCode::NotFound,
            format!("script '{name}' not found in {}: {e}", dir.display()),
        )
    })?;
    if !meta.is_file() {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("script '{name}' is not a regular file"),
        ));
    }
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!(
                "script '{name}' is {} bytes; the limit is {MAX_SCRIPT_BYTES}",
                meta.len()
            ),
        ));
    }
    tokio::fs::read(&path)
        .await
        .map_err(|e| AppError::with_detail(ErrorCode::Internal, format!("read script '{name}': {e}")))
}

pub(super) fn script_cancel(conn: &mut WsConnection<Bmx5>, rid: RequestId, ctx: &mut WsCtx<Bmx5>) {
    // script_complete (reason "cancelled") answers the script_execute
    match stop_script(conn, ctx) {
        Err(e) if e.code == ErrorCode::NoRunningTask => {
            let e = AppError::with_detail(ErrorCode::NoRunningTask, "no script is running");
            conn.send_error(ctx, &e, &rid);
        }
        Err(e) => conn.send_error(ctx, &e, &rid),
        Ok(()) => {}
    }
}

/// Stops the running script and arms its give-up timer; a script that had
/// not started yet ends here (`script_complete`, cancelled).
fn stop_script(conn: &mut WsConnection<Bmx5>, ctx: &mut WsCtx<Bmx5>) -> Result<(), AppError> {
    match conn.domain.script.cancel()? {
        Cancel::StopSent(id) => crate::ws::task::watch_stop(
            id,
            |d: &mut Bmx5| &mut d.script,
            |t: &ScriptTask| &t.rid,
            end_row,
            ctx,
        ),
        Cancel::AlreadyStopping(_) => {}
        Cancel::NotStarted(_, task) => {
            // nothing ran: the run ends here, and its reading or held
            // start is dropped (a hold is withdrawn)
            if let Some(starting) = conn.domain.starting.take() {
                ctx.cancel_future(starting);
            }
            let done = ScriptCompletion {
                reason: FinishReason::Cancelled,
                exit_status: None,
                error: None,
                bytes: 0,
            };
            conn.script_complete(task, done, None, ctx);
        }
    }
    Ok(())
}

/// Access changed: the running script is judged again on its server with
/// the principal as it is now, and stopped with 10010 when no longer
/// covered. (SFTP operations are single requests, each judged when it
/// comes; the pool's sessions serve only requests judged that way.)
pub(super) fn access_changed(conn: &mut WsConnection<Bmx5>, ctx: &mut WsCtx<Bmx5>) {
    let Some((_, task)) = conn.domain.script.live() else {
        return;
    };
    let (server, rid) = (task.server.clone(), task.rid.clone());
    if let Err(why) = conn.judge("script_execute", &[&server]) {
        // 10010 first, then the script's own end
        conn.withdraw(ctx, &why, &rid, "script", &[&server]);
        let _ = stop_script(conn, ctx);
    }
}

impl Handler<ScriptMessage> for WsConnection<Bmx5> {
    type Result = ();

    fn handle(&mut self, msg: ScriptMessage, ctx: &mut WsCtx<Bmx5>) {
        // Only the current run speaks (a run given up on, 50012, is not).
        let Some(task) = self.domain.script.info(msg.task_id) else {
            return;
        };
        let server = task.server.clone();
        match msg.event {
            TaskEvent::Notice(ScriptNotice::Started { remote_path }) => {
                let rid = task.rid.clone();
                self.send(ctx, &Bmx5Reply::ScriptStarted { server, remote_path }, &rid);
            }
            TaskEvent::Notice(ScriptNotice::Output(data)) => {
                self.send(ctx, &Bmx5Reply::ScriptOutput { server, data }, &None)
            }
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => {
                if let Some((task, cleanup)) = self.domain.script.finished(msg.task_id, cleanup_error) {
                    self.script_complete(task, outcome, cleanup, ctx);
                }
            }
        }
    }
}

/// The end row of a script a leaving client cuts off (see `Bmx5::stopping`).
pub(super) fn audit_cut_off(conn: &WsConnection<Bmx5>) {
    let slot = &conn.domain.script;
    if let Some(task) = slot.handle().and(slot.current()).and_then(|id| slot.info(id)) {
        end_row(conn, task, "disconnected");
    }
}

/// The end row of a script whose own end will not be heard (its client
/// left, or it was given up with 50012), with `reason`.
fn end_row(conn: &WsConnection<Bmx5>, task: &ScriptTask, reason: &str) {
    let mut event = conn.audit_event("script.end");
    event.server = Some(task.server.clone());
    event.command = Some(task.label.clone());
    event.detail = Some(serde_json::json!({"reason": reason}));
    let (outcome, code) = crate::ws::task::cut_off_outcome(reason);
    event.ended(outcome, code);
    conn.state.journal.audit(event);
}

impl WsConnection<Bmx5> {
    fn script_complete(
        &mut self,
        task: ScriptTask,
        done: ScriptCompletion,
        cleanup: Option<AppError>,
        ctx: &mut WsCtx<Bmx5>,
    ) {
        for err in [&done.error, &cleanup].into_iter().flatten() {
            self.send_error(ctx, err, &task.rid);
        }
        self.send(
            ctx,
            &Bmx5Reply::ScriptComplete {
                server: task.server.clone(),
                exit_status: done.exit_status,
                reason: done.reason.as_str().to_owned(),
            },
            &task.rid,
        );
        let mut event = self.audit_event("script.end");
        event.server = Some(task.server);
        event.command = Some(task.label);
        event.ended(
            crate::ws::task::outcome_of(done.reason),
            done.error.as_ref().map(|e| e.code.code()),
        );
        event.exit_status = done.exit_status.map(i64::from);
        event.bytes = Some(done.bytes as i64);
        event.detail = Some(serde_json::json!({
            "reason": done.reason.as_str(),
            "error": done.error.map(|e| e.code.code()),
            "cleanup_error": cleanup.map(|e| e.code.code()),
        }));
        self.state.journal.audit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_must_be_plain_visible_file_names() {
        for bad in [
            "",
            "../x",
            "..",
            "a/b",
            "/etc/passwd",
            ".hidden",
            "a\\b",
            "x..y",
            "a\0b",
        ] {
            let err = check_script_name(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::Validation, "{bad:?}");
        }
        for good in ["deploy.sh", "check-disk", "보고서.sh"] {
            assert!(check_script_name(good).is_ok(), "{good:?}");
        }
    }
}
