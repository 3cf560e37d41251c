//! What a BMX4 connection does with its requests (`batch_execute`,
//! `batch_cancel`) and with what its run reports (through the recorder):
//! it keeps the run in its slot and renders frames. It stores nothing.

use std::rc::Rc;

use actix::{Actor, ActorFutureExt, AsyncContext, ContextFutureSpawner, Handler, WrapFuture};
use pinkpage_actors::batch::link::SshLinkFactory;
use pinkpage_actors::batch::plan::BatchPlan;
use pinkpage_actors::batch::run::{BatchMessage, BatchRunActor};
use pinkpage_actors::ssh::ExecLimits;
use pinkpage_actors::task::slot::Cancel;
use pinkpage_actors::task::{Pending, TaskEvent};
use pinkpage_actors::{AppError, ErrorCode};

use super::recorder::{BatchRecorderActor, CreateRun};
use super::state::{Bmx4, RunInfo};
use super::wire::Bmx4Reply;
use crate::records::NewBatchRun;
use crate::request::{BatchExecute, BatchExecuteFields, ServerRef, TimeoutS};
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

/// `batch_execute`: validates, takes the slot, has the recorder write the
/// run's row, then starts the run reporting to the recorder.
pub(super) fn batch_execute(
    conn: &mut WsConnection<Bmx4>,
    fields: BatchExecuteFields,
    rid: RequestId,
    ctx: &mut WsCtx<Bmx4>,
) {
    if conn.domain.run.is_busy() {
        let e = AppError::with_detail(
            ErrorCode::TaskAlreadyRunning,
            "a batch is running on this connection; cancel it or wait for batch_complete",
        );
        return conn.send_error(ctx, &e, &rid);
    }
    let req = match BatchExecute::parse(fields, &conn.state.settings(), &conn.principal) {
        Ok(req) => req,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    let run_id = uuid::Uuid::new_v4().to_string();
    let servers = req.server_names();
    let reserved = conn.domain.run.reserve(RunInfo {
        run_id: run_id.clone(),
        rid: rid.clone(),
        servers: servers.clone(),
    });
    let task_id = match reserved {
        Ok(id) => id,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    let record = NewBatchRun {
        run_id: run_id.clone(),
        at: crate::records::now(),
        actor: conn.id.to_string(),
        user: Some(conn.principal.user.to_string()),
        remote_addr: conn.remote.map(|ip| ip.to_string()),
        servers: servers.clone(),
        commands: req.commands.clone(),
        stop_on_error: req.policy.stop_on_error,
        retries: req.policy.retries,
        retry_delay_ms: req.policy.retry_delay.as_millis() as u64,
        timeout_s: req.timeout_s,
    };
    let recorder =
        BatchRecorderActor::new(conn.state.journal.clone(), record, ctx.address().recipient()).start();
    recorder
        .send(CreateRun)
        .into_actor(conn)
        .map(move |created, conn, ctx| {
            let created = created
                .map_err(|e| AppError::with_detail(ErrorCode::Internal, e.to_string()))
                .and_then(|stored| stored);
            if let Err(e) = created {
                conn.domain.run.abort_start(task_id);
                let e = AppError::with_detail(
                    ErrorCode::BatchFailed,
                    format!("the run could not be recorded: {}", e.detail.unwrap_or_default()),
                );
                return conn.send_error(ctx, &e, &rid);
            }
            let cap = conn.state.settings().batch_output_cap;
            let plan = BatchPlan {
                run_id: run_id.clone(),
                servers: req.servers.into_iter().map(ServerRef::into_spec).collect(),
                commands: req.commands,
                policy: req.policy,
                limits: ExecLimits {
                    max_stdout: cap,
                    max_stderr: cap,
                    timeout: req.timeout.map(TimeoutS::duration),
                },
                // each command at its turn: a refused one fails unrun, a
                // held one waits (its `command_held` answers this run)
                checks: pinkpage_actors::policy::Checks::new(std::sync::Arc::new(
                    conn.rules_telling(&rid, ctx),
                )),
            };
            let commands = plan.commands.len();
            let links = Rc::new(SshLinkFactory {
                ssh: conn.state.ssh.clone(),
            });
            // The recorder is the run's client: it stores, then passes on.
            let (reporter, handle) = Pending::new(task_id, recorder.recipient()).split();
            let addr = BatchRunActor::new(plan, links, reporter).start();
            if let Err(handle) = conn.domain.run.attach(task_id, handle(addr.recipient())) {
                // nobody waits for it any more; the recorder stores its end
                let _ = handle.stop();
                return;
            }
            conn.send(
                ctx,
                &Bmx4Reply::BatchStarted {
                    run_id: &run_id,
                    servers: &servers,
                    commands,
                },
                &rid,
            );
        })
        .spawn(ctx);
}

/// `batch_cancel`: stops the running run named `run_id`. `batch_cancelled`
/// answers at once; `batch_complete` follows once the run's end is stored,
/// or 50012 if it does not end within the stop timeout.
pub(super) fn batch_cancel(
    conn: &mut WsConnection<Bmx4>,
    run_id: String,
    rid: RequestId,
    ctx: &mut WsCtx<Bmx4>,
) {
    let slot = &conn.domain.run;
    // A run still being recorded has not been announced: nothing to cancel.
    let running = slot.handle().and(slot.current()).and_then(|id| slot.info(id));
    let Some(info) = running else {
        let e = AppError::with_detail(ErrorCode::NoRunningTask, "no batch is running on this connection");
        return conn.send_error(ctx, &e, &rid);
    };
    if info.run_id != run_id {
        let e = AppError::with_detail(
            ErrorCode::NoRunningTask,
            format!("run '{run_id}' is not running on this connection"),
        );
        return conn.send_error(ctx, &e, &rid);
    }
    if let Err(e) = stop_run(conn, ctx) {
        return conn.send_error(ctx, &e, &rid);
    }
    conn.send(ctx, &Bmx4Reply::BatchCancelled { run_id: &run_id }, &rid);
}

/// Stops the connection's run and arms its give-up timer. A second stop is
/// fine (one `batch_complete` follows); a run still being recorded is
/// dropped before it starts (its recorder records it cancelled).
fn stop_run(conn: &mut WsConnection<Bmx4>, ctx: &mut WsCtx<Bmx4>) -> Result<(), AppError> {
    if let Cancel::StopSent(id) = conn.domain.run.cancel()? {
        // a run's record is finished by its recorder, not here
        crate::ws::task::watch_stop(
            id,
            |d: &mut Bmx4| &mut d.run,
            |i: &RunInfo| &i.rid,
            |_, _, _| {},
            ctx,
        );
    }
    Ok(())
}

/// Access changed: the run is judged again on its servers with the
/// principal as it is now, and stopped with 10010 when no longer covered.
pub(super) fn access_changed(conn: &mut WsConnection<Bmx4>, ctx: &mut WsCtx<Bmx4>) {
    let Some((_, info)) = conn.domain.run.live() else {
        return;
    };
    let servers: Vec<String> = info.servers.clone();
    let rid = info.rid.clone();
    let names: Vec<&str> = servers.iter().map(String::as_str).collect();
    if let Err(why) = conn.judge("batch_execute", &names) {
        // 10010 first, then the run's own end
        conn.withdraw(ctx, &why, &rid, "batch run", &names);
        let _ = stop_run(conn, ctx);
    }
}

impl Handler<BatchMessage> for WsConnection<Bmx4> {
    type Result = ();

    /// Renders what the recorder passes on (already stored). Only the
    /// current run speaks: a run given up on (50012) is recorded but no
    /// longer shown.
    fn handle(&mut self, msg: BatchMessage, ctx: &mut WsCtx<Bmx4>) {
        let Some(info) = self.domain.run.info(msg.task_id) else {
            return;
        };
        match msg.event {
            TaskEvent::Notice(result) => {
                let rid = info.rid.clone();
                self.send(ctx, &Bmx4Reply::result(&result), &rid);
            }
            TaskEvent::Finished {
                outcome: summary,
                cleanup_error,
            } => {
                let Some((info, cleanup)) = self.domain.run.finished(msg.task_id, cleanup_error) else {
                    return;
                };
                if let Some(e) = cleanup {
                    self.send_error(ctx, &e, &info.rid);
                }
                let whole_run_failed = !summary.cancelled && summary.unreachable.len() == info.servers.len();
                if whole_run_failed {
                    let causes: Vec<String> = summary
                        .unreachable
                        .iter()
                        .map(|(server, e)| format!("{server}: {e}"))
                        .collect();
                    let e = AppError::with_detail(
                        ErrorCode::BatchFailed,
                        format!("no server could be reached: {}", causes.join("; ")),
                    );
                    self.send_error(ctx, &e, &info.rid);
                }
                self.send(
                    ctx,
                    &Bmx4Reply::BatchComplete {
                        run_id: &summary.run_id,
                        succeeded: summary.succeeded,
                        failed: summary.failed,
                        skipped: summary.skipped,
                        duration_ms: summary.duration_ms,
                        cancelled: summary.cancelled,
                    },
                    &info.rid,
                );
            }
        }
    }
}
