//! What every domain does with its [`TaskSlot`]s on the connection side:
//! arm the give-up timer after a stop.

use actix::AsyncContext;
use pinkpage_actors::task::slot::TaskSlot;
use pinkpage_actors::task::{TaskId, STOP_TIMEOUT};

use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;

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
