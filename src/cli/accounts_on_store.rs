//! `pinkpage user ...` and `pinkpage token ...` on a store reached through
//! its traits: how the command line changes accounts on PostgreSQL
//! (`PINKPAGE_DATABASE_URL`), where every instance notices the change
//! through the access revision, as a daemon on SQLite notices the
//! command line's.
//!
//! Each change commits, then its audit row (actor and domain `cli`) is
//! appended to the one chain, as the daemon's own REST changes are: two
//! transactions, where the SQLite path (`super::accounts`) writes both in
//! one. A failure between them (the database lost at that instant) leaves
//! the change without its row, and the command says so and exits 1.
//! Output is the same as on SQLite.

use std::sync::Arc;

use serde_json::json;

use super::accounts::{new_password_hash, print_new_token, print_tokens, print_users, CommandError, Console};
use super::{TokenCommand, UserCommand};
use crate::accounts::AccountError;
use crate::records::NewAuditEvent;
use crate::store::{AccountStore, Applied, AuditStore, UserChange};

/// The stores a command needs.
pub struct StoreDb {
    /// Users and tokens.
    pub accounts: Arc<dyn AccountStore>,
    /// The trail each change is written to.
    pub audit: Arc<dyn AuditStore>,
}

impl StoreDb {
    /// Appends the command's audit row.
    async fn audit(&self, action: &str, target: &str, detail: serde_json::Value) -> Result<(), CommandError> {
        let mut event = NewAuditEvent::new("cli", action).in_domain("cli").on(target);
        event.detail = Some(detail);
        let written = self.audit.append(vec![event]).await.map_err(|e| {
            CommandError::Store(format!(
                "{action} {target} was done, but its audit row could not be written: {}",
                e.detail.unwrap_or_else(|| e.code.message().to_owned())
            ))
        })?;
        match written.first() {
            Some(Applied::Written(_)) => Ok(()),
            other => Err(CommandError::Store(format!(
                "{action} {target} was done, but its audit row was refused: {other:?}"
            ))),
        }
    }

    async fn exists(&self, name: &str) -> Result<bool, CommandError> {
        Ok(self.accounts.list_users().await?.iter().any(|u| u.name == name))
    }

    /// One change of a user and its audit row.
    async fn change(
        &self,
        action: &str,
        name: &str,
        change: UserChange,
        io: &mut Console<'_>,
        detail: impl FnOnce(&crate::accounts::User) -> serde_json::Value,
    ) -> Result<(), CommandError> {
        let user = self.accounts.change_user(name.to_owned(), change).await?;
        self.audit(action, name, detail(&user)).await?;
        writeln!(io.err, "{action} {name}: done")?;
        Ok(())
    }
}

/// Runs one `user` command.
pub async fn run_user(db: &StoreDb, cmd: UserCommand, io: &mut Console<'_>) -> Result<(), CommandError> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            servers,
            password: input,
            no_password,
        } => {
            // Refuse a bad or taken name before asking for a password.
            crate::accounts::validate_name(&name)?;
            if db.exists(&name).await? {
                return Err(AccountError::Exists.into());
            }
            let hash = if no_password {
                None
            } else {
                Some(new_password_hash(&name, input, io)?)
            };
            let user = db.accounts.add_user(name, role, servers, hash).await?;
            db.audit(
                "user.add",
                &user.name,
                json!({"name": user.name, "role": user.role.as_str(), "servers": user.servers}),
            )
            .await?;
            writeln!(io.err, "user {} added as {}", user.name, user.role)?;
        }
        UserCommand::List => print_users(io, db.accounts.list_users().await?)?,
        UserCommand::Passwd {
            name,
            password: input,
        } => {
            if !db.exists(&name).await? {
                return Err(AccountError::NotFound.into());
            }
            let hash = new_password_hash(&name, input, io)?;
            // a new password ends the account's sign-ins (the store does it
            // in the same transaction)
            let change = UserChange {
                password_hash: Some(hash),
                ..UserChange::default()
            };
            db.accounts.change_user(name.clone(), change).await?;
            db.audit("user.passwd", &name, json!({"name": name})).await?;
            writeln!(io.err, "password of {name} changed; its sign-in sessions ended")?;
        }
        UserCommand::Disable { name } => {
            let change = UserChange {
                disabled: Some(true),
                ..UserChange::default()
            };
            db.change("user.disable", &name, change, io, |u| json!({"name": u.name}))
                .await?
        }
        UserCommand::Enable { name } => {
            let change = UserChange {
                disabled: Some(false),
                ..UserChange::default()
            };
            db.change("user.enable", &name, change, io, |u| json!({"name": u.name}))
                .await?
        }
        UserCommand::Role { name, role } => {
            let change = UserChange {
                role: Some(role),
                ..UserChange::default()
            };
            db.change(
                "user.role",
                &name,
                change,
                io,
                |u| json!({"name": u.name, "role": u.role.as_str()}),
            )
            .await?
        }
        UserCommand::Servers { name, tags, all } => {
            let change = UserChange {
                servers: Some(if all { None } else { Some(tags) }),
                ..UserChange::default()
            };
            db.change(
                "user.servers",
                &name,
                change,
                io,
                |u| json!({"name": u.name, "servers": u.servers}),
            )
            .await?
        }
    }
    Ok(())
}

/// Runs one `token` command.
pub async fn run_token(db: &StoreDb, cmd: TokenCommand, io: &mut Console<'_>) -> Result<(), CommandError> {
    match cmd {
        TokenCommand::Create { user, label, expires } => {
            let (info, full) = db.accounts.create_token(user, label, expires.0).await?;
            db.audit(
                "token.create",
                &info.id,
                json!({"id": info.id, "user": info.user, "label": info.label, "expires_at": info.expires_at}),
            )
            .await?;
            print_new_token(io, &info, &full)?;
        }
        TokenCommand::List { user } => print_tokens(io, db.accounts.list_tokens(user).await?)?,
        TokenCommand::Revoke { id } => {
            let info = db.accounts.revoke_token(id).await?;
            db.audit(
                "token.revoke",
                &info.id,
                json!({"id": info.id, "user": info.user}),
            )
            .await?;
            writeln!(io.err, "token {} of {} revoked", info.id, info.user)?;
        }
    }
    Ok(())
}
