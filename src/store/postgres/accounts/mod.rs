//! TODO(issue 30): this domain on PostgreSQL.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{not_yet, PgStore};
use crate::store::*;

impl AccountStore for PgStore {
    fn load(&self) -> StoreFuture<Loaded> {
        not_yet()
    }

    fn changes(&self, revision: i64, session_seq: i64) -> StoreFuture<AccessChanges> {
        not_yet()
    }

    fn list_users(&self) -> StoreFuture<Vec<User>> {
        not_yet()
    }

    fn user_with_password(&self, name: String) -> StoreFuture<Option<(User, String)>> {
        not_yet()
    }

    fn add_user(
        &self,
        name: String,
        role: Role,
        servers: Option<Vec<String>>,
        password_hash: Option<String>,
    ) -> StoreFuture<User> {
        not_yet()
    }

    fn change_user(&self, name: String, change: UserChange) -> StoreFuture<User> {
        not_yet()
    }

    fn list_tokens(&self, user: Option<String>) -> StoreFuture<Vec<TokenInfo>> {
        not_yet()
    }

    fn create_token(
        &self,
        user: String,
        label: String,
        expires_in: Option<chrono::Duration>,
    ) -> StoreFuture<(TokenInfo, Secret)> {
        not_yet()
    }

    fn revoke_token(&self, id: String) -> StoreFuture<TokenInfo> {
        not_yet()
    }

    fn create_session(
        &self,
        user: String,
        secret_hash: String,
        expires_at: DateTime<Utc>,
        remote_addr: Option<String>,
        per_user: usize,
    ) -> StoreFuture<StartedSession> {
        not_yet()
    }

    fn delete_session(&self, id: String) -> StoreFuture<bool> {
        not_yet()
    }

    fn persist_sessions(
        &self,
        seen: Vec<(String, DateTime<Utc>)>,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> StoreFuture<usize> {
        not_yet()
    }
}
