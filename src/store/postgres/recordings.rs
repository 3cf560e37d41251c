//! TODO(issue 30): this domain on PostgreSQL.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{not_yet, PgStore};
use crate::store::*;

impl RecordingStore for PgStore {
    fn apply(&self, writes: Vec<RecordingWrite>) -> BoxFuture<'static, Writes> {
        not_yet()
    }

    fn list(&self, query: RecordingsQuery) -> StoreFuture<Vec<Recording>> {
        not_yet()
    }

    fn get(&self, id: String) -> StoreFuture<Option<Recording>> {
        not_yet()
    }

    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        not_yet()
    }

    fn expired(&self, before: DateTime<Utc>, max_bytes: u64, limit: u32) -> StoreFuture<Vec<Recording>> {
        not_yet()
    }
}
