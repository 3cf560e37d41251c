//! Runs `pinkpage user ...` and `pinkpage token ...` against the database,
//! with no daemon running: a running daemon notices the change through
//! the access revision within its polling interval.
//!
//! Each change and its audit row (actor and domain `cli`, linked into the
//! audit chain with the daemon's key) are written in one transaction, so
//! there is never a change without its trail. The transaction takes the
//! write lock first (`BEGIN IMMEDIATE`): the row's link is made from the
//! chain's end as it is under that lock, whatever the daemon writes
//! meanwhile. Output goes
//! to the writers given (standard output and error in `main`); the only
//! secret ever written is a new token, once, alone on its line of `out`.

use std::io::{BufRead, Write};

use chrono::Utc;
use pinkpage_actors::secret::Secret;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde_json::json;

use super::{PasswordInput, TokenCommand, UserCommand};
use crate::accounts::{password, AccountError};
use crate::records::NewAuditEvent;
use crate::store::chain::Chain;
use crate::store::sqlite::accounts as store;
use crate::store::sqlite::audit::insert_audit;

/// Why a command failed; `main` prints it after `pinkpage: ` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The account operation was refused or the database failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The password could not be read, or the two entries differed.
    #[error("{0}")]
    Input(String),
    /// The store failed (PostgreSQL: the database cannot be reached).
    #[error("{0}")]
    Store(String),
    /// Writing the output failed (a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<pinkpage_actors::AppError> for CommandError {
    fn from(e: pinkpage_actors::AppError) -> Self {
        CommandError::Store(e.detail.unwrap_or_else(|| e.code.message().to_owned()))
    }
}

impl From<rusqlite::Error> for CommandError {
    fn from(e: rusqlite::Error) -> Self {
        CommandError::Account(AccountError::from(e))
    }
}

/// Where passwords are read from: a reader for `--password-stdin`, or the
/// terminal.
pub struct Console<'a> {
    /// Standard input (a test can give any reader).
    pub stdin: &'a mut dyn BufRead,
    /// Normal output: listings, and a new token.
    pub out: &'a mut dyn Write,
    /// Hints and prompts that are not the command's result.
    pub err: &'a mut dyn Write,
}

/// The database and its audit chain, as the command line opened them.
pub struct Db<'a> {
    /// The connection.
    pub conn: &'a Connection,
    /// The audit chain, to link the command's row.
    pub chain: &'a Chain,
}

impl Db<'_> {
    /// A write transaction holding the write lock from its start.
    fn write(&self) -> rusqlite::Result<Transaction<'_>> {
        Transaction::new_unchecked(self.conn, TransactionBehavior::Immediate)
    }

    /// Writes the command's audit row inside `tx`.
    fn audit(
        &self,
        tx: &Connection,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), CommandError> {
        let mut event = NewAuditEvent::new("cli", action).in_domain("cli").on(target);
        event.detail = Some(detail);
        insert_audit(tx, self.chain, &event)?;
        Ok(())
    }
}

/// Runs one `user` command.
pub fn run_user(db: &Db<'_>, cmd: UserCommand, io: &mut Console<'_>) -> Result<(), CommandError> {
    let conn = db.conn;
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
            if store::get_user(conn, &name)?.is_some() {
                return Err(AccountError::Exists.into());
            }
            let hash = if no_password {
                None
            } else {
                Some(new_password_hash(&name, input, io)?)
            };
            let tx = db.write()?;
            let user = store::add_user(&tx, &name, role, servers, hash)?;
            db.audit(
                &tx,
                "user.add",
                &user.name,
                json!({"name": user.name, "role": user.role.as_str(), "servers": user.servers}),
            )?;
            tx.commit()?;
            writeln!(io.err, "user {} added as {}", user.name, user.role)?;
        }
        UserCommand::List => print_users(io, store::list_users(conn)?)?,
        UserCommand::Passwd {
            name,
            password: input,
        } => {
            if store::get_user(conn, &name)?.is_none() {
                return Err(AccountError::NotFound.into());
            }
            let hash = new_password_hash(&name, input, io)?;
            let tx = db.write()?;
            store::set_password(&tx, &name, Some(hash))?;
            // A new password is often a response to a leaked one: sign the
            // account out everywhere.
            let ended = store::delete_sessions_of(&tx, &name)?;
            db.audit(
                &tx,
                "user.passwd",
                &name,
                json!({"name": name, "sessions_ended": ended}),
            )?;
            tx.commit()?;
            writeln!(
                io.err,
                "password of {name} changed; {ended} sign-in session(s) ended"
            )?;
        }
        UserCommand::Disable { name } => change(db, "user.disable", &name, io, |c| {
            store::set_disabled(c, &name, true).map(|_| json!({"name": name}))
        })?,
        UserCommand::Enable { name } => change(db, "user.enable", &name, io, |c| {
            store::set_disabled(c, &name, false).map(|_| json!({"name": name}))
        })?,
        UserCommand::Role { name, role } => change(db, "user.role", &name, io, |c| {
            store::set_role(c, &name, role).map(|u| json!({"name": name, "role": u.role.as_str()}))
        })?,
        UserCommand::Servers { name, tags, all } => {
            let servers = if all { None } else { Some(tags) };
            change(db, "user.servers", &name, io, |c| {
                store::set_servers(c, &name, servers).map(|u| json!({"name": name, "servers": u.servers}))
            })?
        }
    }
    Ok(())
}

/// Runs one `token` command.
pub fn run_token(db: &Db<'_>, cmd: TokenCommand, io: &mut Console<'_>) -> Result<(), CommandError> {
    let conn = db.conn;
    match cmd {
        TokenCommand::Create { user, label, expires } => {
            let tx = db.write()?;
            let (info, full) = store::create_token(&tx, &user, &label, expires.0)?;
            db.audit(
                &tx,
                "token.create",
                &info.id,
                json!({"id": info.id, "user": info.user, "label": info.label, "expires_at": info.expires_at}),
            )?;
            tx.commit()?;
            print_new_token(io, &info, &full)?;
        }
        TokenCommand::List { user } => print_tokens(io, store::list_tokens(conn, user.as_deref())?)?,
        TokenCommand::Revoke { id } => {
            let tx = db.write()?;
            let info = store::revoke_token(&tx, &id)?;
            db.audit(
                &tx,
                "token.revoke",
                &info.id,
                json!({"id": info.id, "user": info.user}),
            )?;
            tx.commit()?;
            writeln!(io.err, "token {} of {} revoked", info.id, info.user)?;
        }
    }
    Ok(())
}

/// `user list`'s table.
pub(super) fn print_users(io: &mut Console<'_>, users: Vec<crate::accounts::User>) -> std::io::Result<()> {
    writeln!(
        io.out,
        "{:<24} {:<8} {:<8} {:<8} {:<20} SERVERS",
        "NAME", "ROLE", "STATE", "PASSWORD", "CREATED"
    )?;
    for u in users {
        let servers = u.servers.map_or_else(|| "(all)".to_owned(), |t| t.join(","));
        let state = if u.disabled { "disabled" } else { "enabled" };
        let pw = if u.has_password { "set" } else { "none" };
        let created = u.created_at.get(..19).unwrap_or(&u.created_at);
        writeln!(
            io.out,
            "{:<24} {:<8} {:<8} {:<8} {:<20} {servers}",
            u.name,
            u.role.as_str(),
            state,
            pw,
            created
        )?;
    }
    Ok(())
}

/// `token list`'s table.
pub(super) fn print_tokens(
    io: &mut Console<'_>,
    tokens: Vec<crate::accounts::TokenInfo>,
) -> std::io::Result<()> {
    let now = Utc::now();
    writeln!(
        io.out,
        "{:<12} {:<24} {:<8} {:<20} {:<20} LABEL",
        "ID", "USER", "STATE", "EXPIRES", "LAST USED"
    )?;
    for t in tokens {
        let short = |at: &Option<String>, none: &str| {
            at.as_deref()
                .map_or(none.to_owned(), |s| s.get(..19).unwrap_or(s).to_owned())
        };
        writeln!(
            io.out,
            "{:<12} {:<24} {:<8} {:<20} {:<20} {}",
            t.id,
            t.user,
            t.state(now).as_str(),
            short(&t.expires_at, "never"),
            short(&t.last_used_at, "never"),
            t.label
        )?;
    }
    Ok(())
}

/// What `token create` prints: the token alone on `out` (so
/// `$(pinkpage token create ...)` captures exactly it), the rest on `err`.
pub(super) fn print_new_token(
    io: &mut Console<'_>,
    info: &crate::accounts::TokenInfo,
    full: &Secret,
) -> std::io::Result<()> {
    writeln!(io.out, "{}", full.expose())?;
    let until = info.expires_at.as_deref().unwrap_or("never");
    writeln!(
        io.err,
        "token {} for {} (expires: {until}). It is shown only this once: store it now. \
         Send it as 'Authorization: Bearer <token>'.",
        info.id, info.user
    )
}

/// One account change and its audit row, in one transaction.
fn change(
    db: &Db<'_>,
    action: &str,
    name: &str,
    io: &mut Console<'_>,
    apply: impl FnOnce(&Connection) -> Result<serde_json::Value, AccountError>,
) -> Result<(), CommandError> {
    let tx = db.write()?;
    let detail = apply(&tx)?;
    db.audit(&tx, action, name, detail)?;
    tx.commit()?;
    writeln!(io.err, "{action} {name}: done")?;
    Ok(())
}

/// Reads a new password, checks its strength and hashes it.
pub(super) fn new_password_hash(
    name: &str,
    input: PasswordInput,
    io: &mut Console<'_>,
) -> Result<String, CommandError> {
    let pw = if input.password_stdin {
        read_stdin_line(io.stdin)?
    } else {
        read_terminal_twice(name)?
    };
    password::check_strength(&pw, name)?;
    Ok(password::hash(&pw)?)
}

/// One line from `stdin`, without its line ending.
fn read_stdin_line(stdin: &mut dyn BufRead) -> Result<Secret, CommandError> {
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| CommandError::Input(format!("cannot read the password from standard input: {e}")))?;
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    // Moved, not copied, into the Secret, which wipes it when dropped.
    Ok(Secret::new(line))
}

/// The password typed twice on the terminal, without echo.
fn read_terminal_twice(name: &str) -> Result<Secret, CommandError> {
    let no_tty = |e: std::io::Error| {
        CommandError::Input(format!(
            "cannot read the password from the terminal ({e}); use --password-stdin"
        ))
    };
    let first = Secret::new(rpassword::prompt_password(format!("Password for {name}: ")).map_err(no_tty)?);
    let second = Secret::new(rpassword::prompt_password("Again: ").map_err(no_tty)?);
    if first != second {
        return Err(CommandError::Input("the two passwords differ".to_owned()));
    }
    Ok(first)
}
