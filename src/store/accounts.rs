//! Accounts, API tokens and sign-in sessions, as the daemon reaches them:
//! typed messages over the SQL in `src/accounts` (which the `pinkpage user`
//! and `token` commands call directly).

use actix::{Handler, Message};
use chrono::{DateTime, Utc};
use pinkpage_actors::AppError;
use rusqlite::Connection;

use super::{db_error, StoreActor};
use crate::accounts;
use crate::auth::directory::Loaded;

/// The auth revision (bumped by every account/token/session change).
#[derive(Message)]
#[rtype(result = "Result<i64, AppError>")]
pub struct AuthRevision;

impl Handler<AuthRevision> for StoreActor {
    type Result = Result<i64, AppError>;

    fn handle(&mut self, _: AuthRevision, _: &mut Self::Context) -> Self::Result {
        Ok(accounts::revision(&self.conn)?)
    }
}

/// Everything the directory needs, read in one transaction so the
/// revision matches the rows.
#[derive(Message)]
#[rtype(result = "Result<Loaded, AppError>")]
pub struct LoadDirectory;

impl Handler<LoadDirectory> for StoreActor {
    type Result = Result<Loaded, AppError>;

    fn handle(&mut self, _: LoadDirectory, _: &mut Self::Context) -> Self::Result {
        load_directory(&mut self.conn)
    }
}

/// Reads what the directory needs in one transaction, so the revision
/// matches the rows. Also used once at start-up, before the store threads
/// serve anyone.
pub fn load_directory(conn: &mut Connection) -> Result<Loaded, AppError> {
    let tx = conn.transaction().map_err(db_error)?;
    let revision = accounts::revision(&tx)?;
    let users = accounts::list_users(&tx)?;
    let tokens = accounts::list_tokens_with_digests(&tx)?;
    let sessions = accounts::list_sessions(&tx)?;
    tx.commit().map_err(db_error)?;
    Ok(Loaded {
        revision,
        users,
        tokens,
        sessions,
    })
}

/// Writes sessions' last use back and removes sessions past their
/// lifetimes.
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct PersistSessions {
    /// (public id, last use).
    pub seen: Vec<(String, DateTime<Utc>)>,
    /// Now: sessions past their absolute lifetime are removed.
    pub now: DateTime<Utc>,
}

impl Handler<PersistSessions> for StoreActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, msg: PersistSessions, _: &mut Self::Context) -> Self::Result {
        let tx = self.conn.transaction().map_err(db_error)?;
        for (id, at) in &msg.seen {
            accounts::touch_session(&tx, id, *at)?;
        }
        accounts::delete_expired_sessions(&tx, msg.now)?;
        tx.commit().map_err(db_error)?;
        Ok(())
    }
}

/// Runs account work on a store thread: sign-in sessions, and the admin
/// REST routes for users and tokens, which call the same functions as the
/// command line.
pub struct WithAccounts<T>(pub AccountWork<T>);

/// The work [`WithAccounts`] runs on a store thread's connection.
pub type AccountWork<T> = Box<dyn FnOnce(&mut Connection) -> Result<T, AppError> + Send>;

impl<T: 'static> Message for WithAccounts<T> {
    type Result = Result<T, AppError>;
}

impl<T: 'static> Handler<WithAccounts<T>> for StoreActor {
    type Result = Result<T, AppError>;

    fn handle(&mut self, WithAccounts(work): WithAccounts<T>, _: &mut Self::Context) -> Self::Result {
        work(&mut self.conn)
    }
}
