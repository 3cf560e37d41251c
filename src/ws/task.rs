//! What every domain does with its [`TaskSlot`]s on the connection side:
//! arm the give-up timer after a stop, and say in the audit trail how a
//! task ended.

use actix::AsyncContext;
use pinkpage_actors::task::slot::TaskSlot;
use pinkpage_actors::task::{TaskId, STOP_TIMEOUT};
use pinkpage_actors::terminal::shell::FinishReason;
use pinkpage_actors::ErrorCode;

use crate::records::Outcome;

use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;

/// The audit outcome of a PTY command or script that ended for `reason`:
/// an exit (any status: the row has it) or the stop phrase is `ok`.
pub fn outcome_of(reason: FinishReason) -> Outcome {
    match reason {
        FinishReason::Exit | FinishReason::StopPhrase => Outcome::Ok,
        FinishReason::Cancelled => Outcome::Cancelled,
        FinishReason::Timeout | FinishReason::Error => Outcome::Failed,
    }
}

/// The audit outcome and code of a task whose own end will not be heard,
/// by the reason its end row gives: its client left (`cancelled`), or it
/// was given up (`failed`, 50012).
pub fn cut_off_outcome(reason: &str) -> (Outcome, Option<u32>) {
    match reason {
        "given_up" => (Outcome::Failed, Some(ErrorCode::TaskCancelTimeout.code())),
        _ => (Outcome::Cancelled, None),
    }
}

/// Gives task `id` up with 50012 (answering its request `rid_of(info)`) if
/// it has not finished `STOP_TIMEOUT` after its stop; the slot `slot_of`
/// picks is then free for a new task. Does nothing if it finished in time.
/// `end_row` writes the task's audit end row (its own end, when it comes,
/// is no longer heard), with the reason it is given.
pub fn watch_stop<D: Domain, I: 'static>(
    id: TaskId,
    slot_of: fn(&mut D) -> &mut TaskSlot<I>,
    rid_of: fn(&I) -> &RequestId,
    end_row: fn(&WsConnection<D>, &I, &str),
    ctx: &mut WsCtx<D>,
) {
    ctx.run_later(STOP_TIMEOUT, move |conn, ctx| {
        if let Some((task, err)) = slot_of(&mut conn.domain).give_up(id) {
            end_row(conn, &task, "given_up");
            log::error!(
                connection_id = conn.id.to_string().as_str(),
                domain = D::NAME,
                user = &*conn.principal.user,
                task_id = id.get();
                "task did not stop in time; given up"
            );
            conn.send_error(ctx, &err, rid_of(&task));
        }
    });
}
