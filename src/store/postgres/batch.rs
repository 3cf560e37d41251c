//! TODO(issue 30): this domain on PostgreSQL.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{not_yet, PgStore};
use crate::store::*;

impl BatchStore for PgStore {
    fn apply(&self, writes: Vec<BatchWrite>) -> BoxFuture<'static, Writes> {
        not_yet()
    }

    fn list(&self, limit: u32, offset: u32, visible: Visible) -> StoreFuture<Vec<BatchRun>> {
        not_yet()
    }

    fn get(
        &self,
        run_id: String,
        page: ResultsPage,
        visible: Visible,
    ) -> StoreFuture<Option<BatchRunDetail>> {
        not_yet()
    }

    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        not_yet()
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired> {
        not_yet()
    }
}
