//! TODO(issue 30): this domain on PostgreSQL.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{not_yet, PgStore};
use crate::store::*;

impl AuditStore for PgStore {
    fn append(&self, rows: Vec<NewAuditEvent>) -> BoxFuture<'static, Writes> {
        not_yet()
    }

    fn list(&self, query: AuditQuery) -> StoreFuture<Vec<AuditEvent>> {
        not_yet()
    }

    fn page_after(&self, after_id: i64, limit: u32) -> StoreFuture<Vec<AuditEvent>> {
        not_yet()
    }

    fn cut(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Option<AuditCut>> {
        not_yet()
    }

    fn interrupt_left_work_and_start(&self, instance: &str) -> StoreFuture<Vec<String>> {
        not_yet()
    }
}
