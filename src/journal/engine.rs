//! The engine's record seams, plugged into the journal: the engine asks
//! for records through traits and recipients of its own and never learns
//! where they go.
//!
//! - [`JournalTempFiles`]: the files domain's `TempFileStore` (a record
//!   before each temporary file exists, its removal after, and the audit
//!   row of a leftover recovered).
//! - [`HealthRecorder`]: the health monitor's `Recipient<HealthTransition>`.

use actix::{Actor, Context, Handler};
use futures_util::future::BoxFuture;
use pinkpage_actors::files::temp_files::{RecordedTempFile, Recovered, TempFile, TempFileStore};
use pinkpage_actors::health::HealthTransition;
use pinkpage_actors::{AppError, ErrorCode};

use super::{Journal, Settled};
use crate::records::{NewAuditEvent, Outcome, TempFileWrite};

/// The temporary-file records of the files domain, written through the
/// journal.
pub struct JournalTempFiles(pub Journal);

impl TempFileStore for JournalTempFiles {
    fn accepting(&self) -> bool {
        !self.0.is_failing()
    }

    fn insert(&self, file: &TempFile) -> BoxFuture<'static, Result<i64, AppError>> {
        let journal = self.0.clone();
        let receipt = journal.record(TempFileWrite::Insert(file.clone()));
        Box::pin(async move {
            match journal.settled(receipt).await {
                Settled::Written(Some(id)) => Ok(id),
                other => Err(AppError::with_detail(
                    ErrorCode::Database,
                    format!("temporary-file record not stored: {other:?}"),
                )),
            }
        })
    }

    fn delete(&self, id: i64) -> BoxFuture<'static, Result<(), AppError>> {
        self.0.record(TempFileWrite::Delete(id)).ignore();
        Box::pin(async { Ok(()) })
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
            let mut event = NewAuditEvent::new("system", action).on(file.file.path.clone());
            if outcome == Recovered::GaveUp {
                event.ended(Outcome::Failed, None);
            }
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

/// Records each health transition the monitor sends, at the time of its
/// check. One actor for the daemon; it only queues.
pub struct HealthRecorder(pub Journal);

impl Actor for HealthRecorder {
    type Context = Context<Self>;
}

impl Handler<HealthTransition> for HealthRecorder {
    type Result = ();

    fn handle(&mut self, t: HealthTransition, _: &mut Context<Self>) {
        self.0.record(t).ignore();
    }
}
