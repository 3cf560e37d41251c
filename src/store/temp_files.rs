//! Records of the temporary files the engine writes on servers (the
//! `TempFileStore` side of `pinkpage_actors::files::temp_files`): inserted
//! before a file is created, deleted once it is renamed or removed; those a
//! killed daemon left are read at start-up and removed at the next
//! connection to their server, each removal audited as
//! `recovery.temp_removed`.

use actix::{Handler, Message};
use futures_util::future::BoxFuture;
use pinkpage_actors::files::temp_files::{
    Machine, RecordedTempFile, Recovered, TempFile, TempFileStore, TempKind,
};
use pinkpage_actors::AppError;
use rusqlite::{params, Connection};

use super::{db_error, NewAuditEvent, Store, StoreActor};

/// Stores a record; replies with its id.
#[derive(Message)]
#[rtype(result = "Result<i64, AppError>")]
pub struct InsertTempFile(pub TempFile);

/// Drops a record.
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct DeleteTempFile(pub i64);

impl Handler<InsertTempFile> for StoreActor {
    type Result = Result<i64, AppError>;

    fn handle(&mut self, InsertTempFile(f): InsertTempFile, _: &mut Self::Context) -> Self::Result {
        self.conn
            .execute(
                "INSERT INTO temp_files (recorded_at, server, username, host, port, path, kind)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    f.server,
                    f.machine.username,
                    f.machine.host,
                    f.machine.port,
                    f.path,
                    f.kind.as_str(),
                ],
            )
            .map_err(db_error)?;
        Ok(self.conn.last_insert_rowid())
    }
}

impl Handler<DeleteTempFile> for StoreActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, DeleteTempFile(id): DeleteTempFile, _: &mut Self::Context) -> Self::Result {
        self.conn
            .execute("DELETE FROM temp_files WHERE id = ?1", params![id])
            .map(drop)
            .map_err(db_error)
    }
}

/// Every record in the database: at start-up, before the daemon writes
/// any, so all of them are a previous daemon's leftovers.
pub(crate) fn load_left(conn: &Connection) -> Result<Vec<RecordedTempFile>, AppError> {
    let mut stmt = conn
        .prepare("SELECT id, server, username, host, port, path, kind FROM temp_files ORDER BY id")
        .map_err(db_error)?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                Machine {
                    username: row.get(2)?,
                    host: row.get(3)?,
                    port: row.get(4)?,
                },
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
            ))
        })
        .map_err(db_error)?;
    let mut left = Vec::new();
    for row in rows {
        let (id, server, machine, path, kind) = row.map_err(db_error)?;
        let Some(kind) = TempKind::parse(&kind) else {
            log::error!(id = id, kind = kind.as_str(); "a temporary-file record of an unknown kind; ignored");
            continue;
        };
        left.push(RecordedTempFile {
            attempts: 0,
            id: Some(id),
            file: TempFile {
                server,
                machine,
                path,
                kind,
            },
        });
    }
    Ok(left)
}

/// The engine's view of the store.
pub struct StoreTempFiles(pub Store);

impl TempFileStore for StoreTempFiles {
    fn accepting(&self) -> bool {
        self.0.journal().health().status == "ok"
    }

    fn insert(&self, file: &TempFile) -> BoxFuture<'static, Result<i64, AppError>> {
        let store = self.0.clone();
        let msg = InsertTempFile(file.clone());
        Box::pin(async move { store.call(msg).await })
    }

    fn delete(&self, id: i64) -> BoxFuture<'static, Result<(), AppError>> {
        let store = self.0.clone();
        Box::pin(async move { store.call(DeleteTempFile(id)).await })
    }

    fn recovered(
        &self,
        file: &RecordedTempFile,
        outcome: Recovered,
    ) -> BoxFuture<'static, Result<(), AppError>> {
        let action = match outcome {
            Recovered::Removed => Some("recovery.temp_removed"),
            Recovered::GaveUp => Some("recovery.temp_left"),
            Recovered::AlreadyGone | Recovered::LeftAlone => None,
        };
        if let Some(action) = action {
            let mut event = NewAuditEvent::new("system", action);
            event.server = Some(file.file.server.clone());
            event.detail = Some(serde_json::json!({
                "path": file.file.path,
                "kind": file.file.kind.as_str(),
                "attempts": file.attempts,
            }));
            self.0.audit(event);
        }
        match file.id {
            Some(id) => self.delete(id),
            None => Box::pin(async { Ok(()) }),
        }
    }
}
