//! BMX5 SFTP requests over the WebSocket: list, stat, mkdir, remove,
//! rename, inline upload and download.
//!
//! Fields are validated once ([`RemotePath`]: 10001; [`ServerRef`]: 23000)
//! before anything runs. Each operation then runs on this client's pooled
//! session for the server, concurrently with the others, in a detached
//! task: a request whose client disconnects still finishes, so an upload's
//! temporary file is always renamed or removed. Changes are audited with
//! their outcome.

use std::future::Future;
use std::sync::Arc;

use actix::{ActorFutureExt, ContextFutureSpawner, WrapFuture};
use base64::Engine as _;
use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::files::sftp::{SftpConn, SftpError};
use pinkpage_actors::{AppError, ErrorCode};

use super::state::Bmx5;
use super::wire::{Bmx5Reply, Bmx5Request, INLINE_MAX_BYTES};
use crate::records::NewAuditEvent;
use crate::request::{RemotePath, ServerRef};
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::{RequestId, MAX_FRAME_BYTES};

/// One SFTP request, its fields validated.
struct Op {
    server: ServerRef,
    what: OpKind,
}

enum OpKind {
    List(RemotePath),
    Stat(RemotePath),
    Mkdir(RemotePath, bool),
    Remove(RemotePath, bool),
    Rename(RemotePath, RemotePath),
    Upload(RemotePath, Vec<u8>),
    Download(RemotePath),
}

/// Validates `req` (an `sftp_*` request): an inline upload's data first
/// (10001, 31002), then paths (10001), then the server (23000).
fn parse(conn: &WsConnection<Bmx5>, req: Bmx5Request) -> Result<Op, AppError> {
    let path = |p| RemotePath::parse("path", p);
    let (server, what) = match req {
        Bmx5Request::SftpList { server, path: p } => (server, OpKind::List(path(p)?)),
        Bmx5Request::SftpStat { server, path: p } => (server, OpKind::Stat(path(p)?)),
        Bmx5Request::SftpMkdir {
            server,
            path: p,
            parents,
        } => (server, OpKind::Mkdir(path(p)?, parents)),
        Bmx5Request::SftpRemove {
            server,
            path: p,
            recursive,
        } => (server, OpKind::Remove(path(p)?, recursive)),
        Bmx5Request::SftpRename { server, from, to } => (
            server,
            OpKind::Rename(RemotePath::parse("from", from)?, RemotePath::parse("to", to)?),
        ),
        Bmx5Request::SftpDownload { server, path: p } => (server, OpKind::Download(path(p)?)),
        Bmx5Request::SftpUpload {
            server,
            path: p,
            data,
        } => {
            // the data is looked at first, as before paths and servers were
            // typed: a client sees the same error for the same frame
            let bytes = inline_data(&data)?;
            (server, OpKind::Upload(path(p)?, bytes))
        }
        Bmx5Request::ScriptExecute { .. } | Bmx5Request::ScriptCancel => {
            return Err(AppError::with_detail(ErrorCode::Internal, "not an sftp request"))
        }
    };
    let server = ServerRef::resolve(&conn.state.settings(), &conn.principal, &server)?;
    Ok(Op { server, what })
}

/// An inline upload's bytes: base64 (10001 otherwise) of at most
/// [`INLINE_MAX_BYTES`] (31002 otherwise).
fn inline_data(data: &str) -> Result<Vec<u8>, AppError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .map_err(|e| AppError::with_detail(ErrorCode::Validation, format!("data is not base64: {e}")))?;
    if bytes.len() as u64 > INLINE_MAX_BYTES {
        return Err(AppError::with_detail(
            ErrorCode::WsTooLarge,
            format!(
                "{} bytes; inline uploads are limited to {INLINE_MAX_BYTES} bytes ({MAX_FRAME_BYTES}-byte frames): \
                 use PUT /api/v1/bmx5/files",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Handles an `sftp_*` request.
pub(super) fn handle(conn: &mut WsConnection<Bmx5>, req: Bmx5Request, rid: RequestId, ctx: &mut WsCtx<Bmx5>) {
    let Op { server, what } = match parse(conn, req) {
        Ok(op) => op,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    let s = server.name().to_owned();
    match what {
        OpKind::List(p) => run(conn, server, None, rid, ctx, move |c| async move {
            // the directory as the server resolves it: the reply names the
            // absolute path that was listed ("." becomes the home directory)
            let path = c.resolve(p.as_str()).await?;
            let entries = c.list(&path).await?;
            Ok(Bmx5Reply::SftpListResult {
                server: s,
                path,
                entries,
            })
        }),
        OpKind::Stat(p) => run(conn, server, None, rid, ctx, move |c| async move {
            let entry = c.stat(p.as_str()).await?;
            Ok(Bmx5Reply::SftpStatResult {
                server: s,
                path: p.into_string(),
                entry,
            })
        }),
        OpKind::Mkdir(p, parents) => {
            let audit = audit_event(conn, "sftp.mkdir", &s, p.as_str(), None);
            run(conn, server, Some(audit), rid, ctx, move |c| async move {
                let created = c.mkdir(p.as_str(), parents).await?;
                Ok(Bmx5Reply::SftpMkdirResult {
                    server: s,
                    path: p.into_string(),
                    created,
                })
            })
        }
        OpKind::Remove(p, recursive) => {
            let audit = audit_event(conn, "sftp.remove", &s, p.as_str(), None);
            run(conn, server, Some(audit), rid, ctx, move |c| async move {
                let removed = c.remove(p.as_str(), recursive).await?;
                Ok(Bmx5Reply::SftpRemoveResult {
                    server: s,
                    path: p.into_string(),
                    removed,
                })
            })
        }
        OpKind::Rename(from, to) => {
            let audit = audit_event(conn, "sftp.rename", &s, from.as_str(), Some(to.as_str()));
            run(conn, server, Some(audit), rid, ctx, move |c| async move {
                c.rename(from.as_str(), to.as_str()).await?;
                Ok(Bmx5Reply::SftpRenameResult {
                    server: s,
                    from: from.into_string(),
                    to: to.into_string(),
                })
            })
        }
        OpKind::Upload(p, bytes) => {
            let audit = audit_event(conn, "sftp.upload", &s, p.as_str(), None);
            run(conn, server, Some(audit), rid, ctx, move |c| async move {
                let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
                    actix_web::web::Bytes::from(bytes),
                )]);
                let size = c.write_atomic(p.as_str(), body).await?;
                Ok(Bmx5Reply::SftpUploadResult {
                    server: s,
                    path: p.into_string(),
                    size,
                })
            })
        }
        OpKind::Download(p) => {
            let audit = audit_event(conn, "sftp.download", &s, p.as_str(), None);
            run(conn, server, Some(audit), rid, ctx, move |c| async move {
                let bytes = c.read_small(p.as_str(), INLINE_MAX_BYTES).await?;
                Ok(Bmx5Reply::SftpDownloadResult {
                    server: s,
                    path: p.into_string(),
                    size: bytes.len() as u64,
                    data: base64::engine::general_purpose::STANDARD.encode(bytes),
                })
            })
        }
    }
}

fn audit_event(
    conn: &WsConnection<Bmx5>,
    action: &str,
    server: &str,
    path: &str,
    to: Option<&str>,
) -> NewAuditEvent {
    let mut event = conn.audit_event(action).on(path);
    event.server = Some(server.to_owned());
    event.detail = Some(match to {
        Some(to) => serde_json::json!({"from": path, "to": to}),
        None => serde_json::json!({"path": path}),
    });
    event
}

/// Runs one SFTP operation on this client's pooled session for `server`
/// in a detached task, replies with what it returns (or its error, 52000
/// with the SFTP status in the detail) and records `audit` either way.
fn run<F, Fut>(
    conn: &mut WsConnection<Bmx5>,
    server: ServerRef,
    audit: Option<NewAuditEvent>,
    rid: RequestId,
    ctx: &mut WsCtx<Bmx5>,
    op: F,
) where
    F: FnOnce(Arc<SftpConn>) -> Fut + 'static,
    Fut: Future<Output = Result<Bmx5Reply, SftpError>> + 'static,
{
    let Some(counted) = conn.operation_or_refuse(&rid, ctx) else {
        return;
    };
    let pool = conn
        .domain
        .pool
        .get_or_insert_with(|| SftpPool::start(conn.state.temp_files.clone()))
        .clone();
    let opts = conn.state.ssh.clone();
    let task = actix::spawn(async move {
        let _counted = counted;
        let c = pool.get(server.spec(), &opts).await?;
        op(c).await
    });
    task.into_actor(conn)
        .map(move |res, conn, ctx| {
            let res = match res {
                Ok(r) => r.map_err(AppError::from),
                Err(e) => Err(AppError::with_detail(
                    ErrorCode::Internal,
                    format!("sftp task: {e}"),
                )),
            };
            if let Some(mut event) = audit {
                record_outcome(&mut event, &res);
                conn.state.journal.audit(event);
            }
            match res {
                Ok(reply) => conn.send(ctx, &reply, &rid),
                Err(e) => conn.send_error(ctx, &e, &rid),
            }
        })
        .spawn(ctx);
}

/// Adds the outcome (ok, error code and detail, bytes) to an audit event.
fn record_outcome(event: &mut NewAuditEvent, res: &Result<Bmx5Reply, AppError>) {
    if let Ok(Bmx5Reply::SftpUploadResult { size, .. } | Bmx5Reply::SftpDownloadResult { size, .. }) = res {
        event.bytes = Some(*size as i64);
    }
    if let Err(e) = res {
        event.ended(crate::records::Outcome::Failed, Some(e.code.code()));
    }
    if let Some(serde_json::Value::Object(map)) = event.detail.as_mut() {
        map.insert("ok".into(), res.is_ok().into());
        if let Err(e) = res {
            map.insert("error".into(), e.code.code().into());
            map.insert("error_detail".into(), e.detail.clone().into());
        }
    }
}
