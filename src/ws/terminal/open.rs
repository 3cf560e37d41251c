//! Opening, typing into, attaching to and closing operator terminals.
//! Each handler checks and acts in one step of the connection actor;
//! what the terminal answers comes back as events (`super::events`).

use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, ContextFutureSpawner, WrapFuture};
use pinkpage_actors::pty::book::{PtyInfo, PtyKind};
use pinkpage_actors::ssh::PtyRequest;
use pinkpage_actors::terminal::book::{NewTerminal, TerminalEntry};
use pinkpage_actors::terminal::operator::{
    Attach, Close, CloseReason, Detach, Follow, Input, OperatorTerminal, Resize, TerminalRequest,
};
use pinkpage_actors::{AppError, ErrorCode, TerminalId};

use super::state::{size, terminal_id, Following, TerminalConn};
use super::wire::{Listed, Share, TerminalReply};
use crate::request::ServerRef;
use crate::terminals::access::{at_request, forbidden, terminal_right, Right};
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

type Conn = WsConnection<TerminalConn>;
type Ctx = WsCtx<TerminalConn>;

fn follow(conn: &Conn, ctx: &Ctx, can_type: bool) -> Follow {
    Follow {
        conn: conn.id,
        user: conn.principal.user.clone(),
        sink: ctx.address().recipient(),
        can_type,
    }
}

/// The terminal named `text`, as it is now: 10001, 54000.
fn entry(conn: &Conn, text: &str) -> Result<TerminalEntry, AppError> {
    let id = terminal_id(text)?;
    conn.state
        .terminals
        .get(id)
        .ok_or_else(pinkpage_actors::terminal::book::unknown)
}

/// The terminal named `text`, when the caller owns it: 10001, 54000, and
/// 10003 for anyone but its owner, who alone may `what` it.
pub(super) fn owned(conn: &Conn, text: &str, what: &str) -> Result<TerminalEntry, AppError> {
    let entry = entry(conn, text)?;
    if entry.owner != conn.principal.user {
        return Err(forbidden(format!(
            "terminal belongs to {}; only its owner may {what} it",
            entry.owner
        )));
    }
    Ok(entry)
}

/// An audit row about terminal `entry`.
pub(super) fn audit(conn: &Conn, action: &str, entry: &TerminalEntry, detail: serde_json::Value) {
    audit_with(conn, conn.audit_event(action), entry, detail);
}

/// `terminal_open`: checks the size (10001) and the server (23000, 10003),
/// takes a place (54001, 54002), and starts the terminal with this
/// connection attached from offset 0; `terminal_opened` follows once the
/// shell is open (or the error that stopped it).
pub(super) fn open(
    conn: &mut Conn,
    server: String,
    (cols, rows): (Option<u32>, Option<u32>),
    command: Option<String>,
    rid: &RequestId,
    ctx: &mut Ctx,
) -> Result<(), AppError> {
    let cols = size(cols, 80, "cols")?;
    let rows = size(rows, 24, "rows")?;
    let command = command.unwrap_or_default();
    if command.contains('\0') {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "command must not contain NUL",
        ));
    }
    let spec = ServerRef::resolve(&conn.state.settings(), &conn.principal, &server)?.into_spec();
    // the command rules: a terminal's command is judged as it opens (a
    // `review` rule refuses it: terminals are not held), and every line
    // typed into it as Enter is pressed
    let rules = conn.rules();
    if !command.is_empty() {
        if let Some(refusal) = rules.refuse_typed(&spec, &command) {
            return Err(refusal);
        }
    }
    let typed_lines = rules.typed_lines(&spec);
    let settings = &conn.state.settings().terminals;
    let mut info = PtyInfo::new(PtyKind::Terminal, conn.principal.user.clone(), &server, &command);
    let (seat, stats) = conn.state.terminals.reserve(NewTerminal {
        pty_id: info.pty_id,
        owner: conn.principal.user.clone(),
        server: server.clone(),
        command: command.clone(),
    })?;
    let id = seat.terminal_id();
    info.terminal_id = Some(id);
    let pty = PtyRequest {
        term: "xterm-256color".to_owned(),
        cols,
        rows,
    };
    // recorded before it connects: a recording that cannot start refuses
    // the terminal (56001), and the seat goes back with `seat`'s drop
    let recorder = conn.state.ptys.record(&info, &spec, &pty)?;
    let registration = conn.state.ptys.register(info, Some(settings.scrollback_bytes));
    let feed = registration.feed().clone();
    let request = TerminalRequest {
        server: spec,
        ssh: conn.state.ssh.clone(),
        command: command.clone(),
        pty,
        recorder,
        typed_lines,
        throttle: conn.state.settings().throttle,
        seat,
        stats,
        registration,
        detach: settings.detach,
        idle: settings.idle,
        opener: follow(conn, ctx, true),
        on_ended: Some(conn.state.terminal_warden.clone().recipient()),
    };
    // the seat moves into the actor: the book learns its address
    let addr = actix::Actor::start(OperatorTerminal::new(request));
    conn.state.terminals.started(id, addr, feed);
    conn.domain
        .opening
        .insert(id, (rid.clone(), server.clone(), command.clone()));
    log::info!(
        connection_id = conn.id.to_string().as_str(),
        terminal_id = id.to_string().as_str(),
        user = &*conn.principal.user,
        server = server.as_str();
        "terminal open requested"
    );
    if let Some(entry) = conn.state.terminals.get(id) {
        let mut event = conn.audit_event("terminal.open");
        event.command = Some(command);
        audit_with(
            conn,
            event,
            &entry,
            serde_json::json!({"cols": cols, "rows": rows}),
        );
    }
    Ok(())
}

fn audit_with(
    conn: &Conn,
    mut event: crate::records::NewAuditEvent,
    entry: &TerminalEntry,
    detail: serde_json::Value,
) {
    event.server = Some(entry.server.clone());
    event.target = Some(entry.terminal_id.to_string());
    let mut detail = detail;
    if let Some(map) = detail.as_object_mut() {
        map.insert("terminal_id".into(), entry.terminal_id.to_string().into());
        map.insert("pty_id".into(), entry.pty_id.to_string().into());
        map.insert("owner".into(), entry.owner.to_string().into());
    }
    event.detail = Some(detail);
    conn.state.journal.audit(event);
}

/// The terminal this connection follows and may type into: 54003 when it
/// only watches it, 10003 when it is not its to type into, 54000.
fn typist<'a>(conn: &'a Conn, text: &str) -> Result<(TerminalId, &'a Following), AppError> {
    let id = terminal_id(text)?;
    if let Some(f) = conn.domain.following.get(&id) {
        return Ok((id, f));
    }
    let entry = conn
        .state
        .terminals
        .get(id)
        .ok_or_else(pinkpage_actors::terminal::book::unknown)?;
    if conn.domain.watching.contains_key(&entry.pty_id) {
        return Err(AppError::with_detail(
            ErrorCode::WatchOnly,
            "this connection watches the terminal; it may not type in it",
        ));
    }
    match terminal_right(&conn.state.settings(), &conn.principal, &entry).map_err(at_request)? {
        Right::Watch => Err(AppError::with_detail(
            ErrorCode::WatchOnly,
            "the terminal is shared with you to watch only",
        )),
        _ => Err(AppError::with_detail(
            ErrorCode::Validation,
            "this connection is not attached to the terminal; send terminal_attach first",
        )),
    }
}

/// The judge of the lines this connection types on `server`.
pub(super) fn typed_lines(conn: &Conn, server: &str) -> Option<pinkpage_actors::policy::line::LineJudge> {
    let settings = conn.state.settings();
    conn.rules().typed_lines(settings.server(server)?)
}

/// `terminal_input`: to a terminal this connection follows, re-judged
/// first (no keystroke of a withdrawn user reaches the shell).
pub(super) fn input(
    conn: &mut Conn,
    text: &str,
    data: String,
    rid: &RequestId,
    ctx: &mut Ctx,
) -> Result<(), AppError> {
    let (_, f) = typist(conn, text)?;
    conn.judge("terminal_input", &[f.server.as_str()])?;
    let rid = rid.clone();
    f.addr
        .send(Input {
            conn: conn.id,
            data,
            typed_lines: f.typed_lines.clone(),
        })
        .into_actor(conn)
        .map(move |res, conn, ctx| {
            if let Err(e) = flatten(res) {
                conn.send_error(ctx, &e, &rid);
            }
        })
        .spawn(ctx);
    Ok(())
}

/// `terminal_resize`.
pub(super) fn resize(
    conn: &mut Conn,
    text: &str,
    cols: u32,
    rows: u32,
    rid: &RequestId,
    ctx: &mut Ctx,
) -> Result<(), AppError> {
    size(Some(cols), 80, "cols")?;
    size(Some(rows), 24, "rows")?;
    let (id, f) = typist(conn, text)?;
    let rid = rid.clone();
    f.addr
        .send(Resize {
            conn: conn.id,
            cols,
            rows,
        })
        .into_actor(conn)
        .map(move |res, conn, ctx| match flatten(res) {
            Ok(()) => {
                let frame = TerminalReply::TerminalResized {
                    terminal_id: id.to_string(),
                    cols,
                    rows,
                };
                conn.send(ctx, &frame, &rid);
            }
            Err(e) => conn.send_error(ctx, &e, &rid),
        })
        .spawn(ctx);
    Ok(())
}

/// `terminal_close`: its owner only (10003). The answer is its
/// `terminal_closed`, sent once the remote shell's session is closed.
pub(super) fn close(conn: &mut Conn, text: &str, rid: &RequestId, ctx: &mut Ctx) -> Result<(), AppError> {
    let entry = owned(conn, text, "close")?;
    let Some(addr) = entry.addr.clone() else {
        return Err(AppError::with_detail(
            ErrorCode::UnknownTerminal,
            "the terminal is still opening",
        ));
    };
    audit(conn, "terminal.close", &entry, serde_json::json!({}));
    let id = entry.terminal_id;
    if conn.domain.following.contains_key(&id) {
        // answered by its Closed event, which this connection gets
        conn.domain.closing.insert(id, rid.clone());
        addr.do_send(Close {
            reason: CloseReason::Closed,
            error: None,
            done: None,
        });
        return Ok(());
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    addr.do_send(Close {
        reason: CloseReason::Closed,
        error: None,
        done: Some(tx),
    });
    let rid = rid.clone();
    let bytes = entry.bytes();
    rx.into_actor(conn)
        .map(move |_, conn, ctx| {
            let frame = TerminalReply::TerminalClosed {
                terminal_id: id.to_string(),
                reason: CloseReason::Closed.as_str(),
                error: None,
                bytes,
                exit_status: None,
            };
            conn.send(ctx, &frame, &rid);
        })
        .spawn(ctx);
    Ok(())
}

/// `terminal_attach`: the owner or a co-typist (10003 otherwise, 54000);
/// `terminal_attached` then the output from `since` come as events.
pub(super) fn attach(
    conn: &mut Conn,
    text: &str,
    since: Option<u64>,
    rid: &RequestId,
    ctx: &mut Ctx,
) -> Result<(), AppError> {
    let entry = entry(conn, text)?;
    let right = terminal_right(&conn.state.settings(), &conn.principal, &entry).map_err(at_request)?;
    if right == Right::Watch {
        return Err(forbidden(
            "the terminal is shared with you to watch only: send terminal_watch with its pty_id",
        ));
    }
    let Some(addr) = entry.addr.clone() else {
        return Err(AppError::with_detail(
            ErrorCode::UnknownTerminal,
            "the terminal is still opening",
        ));
    };
    let id = entry.terminal_id;
    conn.domain.attaching.insert(id, rid.clone());
    conn.domain.following.insert(
        id,
        Following {
            addr: addr.clone(),
            server: entry.server.clone(),
            typed_lines: typed_lines(conn, &entry.server),
        },
    );
    audit(
        conn,
        "terminal.attach",
        &entry,
        serde_json::json!({"since": since, "as": right.as_str()}),
    );
    let rid = rid.clone();
    addr.send(Attach {
        follow: follow(conn, ctx, true),
        since,
    })
    .into_actor(conn)
    .map(move |res, conn, ctx| {
        if let Err(e) = flatten(res) {
            conn.domain.attaching.remove(&id);
            conn.domain.following.remove(&id);
            conn.send_error(ctx, &e, &rid);
        }
    })
    .spawn(ctx);
    Ok(())
}

/// `terminal_detach`: this connection stops following; the terminal runs
/// on (detached if nobody else follows it).
pub(super) fn detach(conn: &mut Conn, text: &str, rid: &RequestId, ctx: &mut Ctx) -> Result<(), AppError> {
    let id = terminal_id(text)?;
    let Some(f) = conn.domain.following.remove(&id) else {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "this connection is not attached to that terminal",
        ));
    };
    f.addr.do_send(Detach { conn: conn.id });
    if let Some(entry) = conn.state.terminals.get(id) {
        audit(conn, "terminal.detach", &entry, serde_json::json!({}));
    }
    let frame = TerminalReply::TerminalDetached {
        terminal_id: id.to_string(),
        error: None,
    };
    conn.send(ctx, &frame, rid);
    Ok(())
}

/// `terminal_list`: the caller's terminals and those shared with it.
pub(super) fn list(conn: &mut Conn, rid: &RequestId, ctx: &mut Ctx) -> Result<(), AppError> {
    let me = conn.principal.user.clone();
    let terminals = conn
        .state
        .terminals
        .all()
        .into_iter()
        .filter(|e| e.addr.is_some())
        .filter_map(|e| {
            let access = if e.owner == me {
                "owner"
            } else {
                e.share_of(&me)?.as_str()
            };
            Some(listed(&e, access, &me))
        })
        .collect();
    conn.send(ctx, &TerminalReply::TerminalList { terminals }, rid);
    Ok(())
}

/// One terminal as `terminal_list` shows it to `me`.
pub(super) fn listed(e: &TerminalEntry, access: &'static str, me: &Arc<str>) -> Listed {
    let attached = e.stats.attached.load(std::sync::atomic::Ordering::Relaxed);
    Listed {
        terminal_id: e.terminal_id.to_string(),
        pty_id: e.pty_id.to_string(),
        owner: e.owner.to_string(),
        server: e.server.clone(),
        command: e.command.clone(),
        started: e.started.to_rfc3339(),
        state: if attached > 0 { "attached" } else { "detached" },
        attached,
        bytes: e.bytes(),
        idle_s: e.stats.idle().as_secs_f64(),
        access,
        shared_with: if e.owner == *me {
            e.shares
                .iter()
                .map(|(user, mode)| Share {
                    user: user.clone(),
                    mode: mode.as_str(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

fn flatten<T>(res: Result<Result<T, AppError>, actix::MailboxError>) -> Result<T, AppError> {
    res.map_err(|_| AppError::with_detail(ErrorCode::UnknownTerminal, "the terminal has closed"))?
}
