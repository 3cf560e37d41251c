//! TODO(issue 30): this domain on PostgreSQL.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{not_yet, PgStore};
use crate::store::*;

impl HealthStore for PgStore {
    fn record(&self, transitions: Vec<HealthTransition>) -> BoxFuture<'static, Writes> {
        not_yet()
    }

    fn list(&self, server: String, limit: u32) -> StoreFuture<Vec<HealthEvent>> {
        not_yet()
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<u64> {
        not_yet()
    }
}
