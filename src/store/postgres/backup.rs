//! TODO(issue 30): this domain on PostgreSQL.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{not_yet, PgStore};
use crate::store::*;

impl BackupStore for PgStore {
    fn backup(&self, into: std::path::PathBuf) -> StoreFuture<u64> {
        not_yet()
    }
}
