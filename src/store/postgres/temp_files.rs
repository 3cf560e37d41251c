//! TODO(issue 30): this domain on PostgreSQL.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{not_yet, PgStore};
use crate::store::*;

impl TempFileStore for PgStore {
    fn apply(&self, writes: Vec<TempFileWrite>) -> BoxFuture<'static, Writes> {
        not_yet()
    }

    fn left(&self, instance: &str) -> StoreFuture<Vec<RecordedTempFile>> {
        not_yet()
    }
}
