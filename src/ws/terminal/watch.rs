//! Sharing operator terminals and watching any PTY read-only.

use actix::AsyncContext;
use pinkpage_actors::access::{Need, Role};
use pinkpage_actors::terminal::book::ShareMode;
use pinkpage_actors::terminal::operator::DropUser;
use pinkpage_actors::{AppError, ErrorCode};

use super::open::{audit, owned};
use super::state::{pty_id, TerminalConn, Watching};
use super::wire::TerminalReply;
use crate::auth::rejudge;
use crate::terminals::access::{at_request, may_watch};
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

type Conn = WsConnection<TerminalConn>;
type Ctx = WsCtx<TerminalConn>;

fn refused(why: impl Into<String>) -> AppError {
    AppError::with_detail(ErrorCode::ShareRefused, why.into())
}

/// `terminal_share`: the owner (10003) lets `user` watch or co-type. The
/// user must exist and be enabled, have the server in its scope, and be an
/// operator to co-type (54008 otherwise). A lower mode than before ends
/// the user's typing at once.
pub(super) fn share(
    conn: &mut Conn,
    text: &str,
    user: &str,
    mode: &str,
    rid: &RequestId,
    ctx: &mut Ctx,
) -> Result<(), AppError> {
    let mode = ShareMode::parse(mode)
        .ok_or_else(|| AppError::with_detail(ErrorCode::Validation, "mode must be watch or type"))?;
    let entry = owned(conn, text, "share")?;
    let id = entry.terminal_id;
    if user == &*conn.principal.user {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "the owner needs no share",
        ));
    }
    let target = rejudge::account_by_name(&conn.state.identity, user)
        .map_err(|_| refused(format!("no enabled account named '{user}'")))?;
    let need = match mode {
        ShareMode::Watch => Need::Viewer,
        ShareMode::Type => Need::Operator,
    };
    if !target.meets(need) {
        return Err(refused(format!(
            "{user} is a {} and co-typing needs an operator",
            target.role
        )));
    }
    rejudge::judge(&*conn.state.settings(), &target, need, &[entry.server.as_str()])
        .map_err(|e| refused(e.detail.unwrap_or_default()))?;
    let before = entry.share_of(user);
    conn.state.terminals.share(id, user, mode)?;
    if before == Some(ShareMode::Type) && mode == ShareMode::Watch {
        if let Some(addr) = &entry.addr {
            addr.do_send(DropUser {
                user: user.to_owned(),
                error: rejudge::withdrawn("the owner changed the share to watch only"),
            });
        }
    }
    audit(
        conn,
        "terminal.share",
        &entry,
        serde_json::json!({"user": user, "mode": mode.as_str()}),
    );
    let frame = TerminalReply::TerminalShared {
        terminal_id: id.to_string(),
        user,
        mode: mode.as_str(),
    };
    conn.send(ctx, &frame, rid);
    Ok(())
}

/// `terminal_unshare`: the owner ends `user`'s share; the user's
/// connections stop following and watching it at once (10010).
pub(super) fn unshare(
    conn: &mut Conn,
    text: &str,
    user: &str,
    rid: &RequestId,
    ctx: &mut Ctx,
) -> Result<(), AppError> {
    let entry = owned(conn, text, "unshare")?;
    let id = entry.terminal_id;
    let was = conn.state.terminals.unshare(id, user);
    if let Some(addr) = &entry.addr {
        addr.do_send(DropUser {
            user: user.to_owned(),
            error: rejudge::withdrawn("the owner revoked the share"),
        });
    }
    audit(
        conn,
        "terminal.unshare",
        &entry,
        serde_json::json!({"user": user, "mode": was.map(ShareMode::as_str)}),
    );
    let frame = TerminalReply::TerminalUnshared {
        terminal_id: id.to_string(),
        user,
    };
    conn.send(ctx, &frame, rid);
    Ok(())
}

/// `terminal_watch`: admins any PTY, users their own and terminals shared
/// with them (10003 otherwise, 54007 when none runs, 54004 past the
/// watcher cap). `terminal_watching` comes first, then the scrollback and
/// live output as `pty_output`.
pub(super) fn watch(conn: &mut Conn, text: &str, rid: &RequestId, ctx: &mut Ctx) -> Result<(), AppError> {
    let pty_id = pty_id(text)?;
    let (info, feed) = conn
        .state
        .ptys
        .get(pty_id)
        .ok_or_else(|| AppError::with_detail(ErrorCode::UnknownPty, "no running PTY has that id"))?;
    let entry = info.terminal_id.and_then(|t| conn.state.terminals.get(t));
    may_watch(&conn.state.settings(), &conn.principal, &info, entry.as_ref()).map_err(at_request)?;
    if let Some(old) = conn.domain.watching.remove(&pty_id) {
        old.feed.unwatch(old.watch);
    }
    // The reply goes out now; the scrollback the feed sends meanwhile
    // waits in this connection's mailbox, so it follows the reply.
    let watching = feed.watch(conn.principal.user.clone(), ctx.address().recipient())?;
    let frame = TerminalReply::TerminalWatching {
        pty_id: pty_id.to_string(),
        kind: info.kind.as_str(),
        user: &info.user,
        server: &info.server,
        from: watching.from,
        cut: watching.cut,
    };
    conn.send(ctx, &frame, rid);
    let mut event = conn.audit_event("terminal.watch").on(pty_id.to_string());
    event.server = Some(info.server.clone());
    event.detail = Some(serde_json::json!({
        "pty_id": pty_id.to_string(),
        "kind": info.kind.as_str(),
        "owner": &*info.user,
        "terminal_id": info.terminal_id.map(|t| t.to_string()),
        "as_admin": conn.principal.role == Role::Admin && info.user != conn.principal.user,
    }));
    conn.state.journal.audit(event);
    conn.domain.watching.insert(
        pty_id,
        Watching {
            watch: watching.watch,
            feed,
        },
    );
    Ok(())
}

/// `terminal_unwatch`.
pub(super) fn unwatch(conn: &mut Conn, text: &str, rid: &RequestId, ctx: &mut Ctx) -> Result<(), AppError> {
    let pty_id = pty_id(text)?;
    let Some(w) = conn.domain.watching.remove(&pty_id) else {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "this connection does not watch that PTY",
        ));
    };
    w.feed.unwatch(w.watch);
    let frame = TerminalReply::PtyWatchEnded {
        pty_id: pty_id.to_string(),
        reason: "unwatched",
    };
    conn.send(ctx, &frame, rid);
    Ok(())
}
