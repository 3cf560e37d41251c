//! The account tables (migration 4), as synchronous functions on a
//! connection: users here, API tokens in [`tokens`], sign-in sessions in
//! [`sessions`]. Every function is one short statement or transaction, so
//! the daemon calls them on its store threads and the command line on its
//! own connection; SQLite's locking keeps the two apart. The records and
//! the naming rules are the accounts domain's (`crate::accounts`).

pub mod sessions;
pub mod tokens;

pub use sessions::*;
pub use tokens::*;

use chrono::Utc;
use pinkpage_actors::access::Role;
use rusqlite::{params, Connection, OptionalExtension, Row};

use pinkpage_actors::{AppError, ErrorCode};

use super::tx::db_error;
use crate::accounts::{validate_name, validate_tags, AccessChanges, AccountError, Loaded, User};
use crate::records::timestamp as rfc3339;
use crate::store::UserChange;

/// A database failure of an account operation.
impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        AccountError::Db(e.to_string())
    }
}

const USER_COLUMNS: &str =
    "id, name, role, servers, disabled, created_at, changed_at, password_hash IS NOT NULL";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(2)?;
    let servers: Option<String> = r.get(3)?;
    let servers = match servers {
        None => None,
        Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
        })?),
    };
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
        })?,
        servers,
        disabled: r.get(4)?,
        created_at: r.get(5)?,
        changed_at: r.get(6)?,
        has_password: r.get(7)?,
    })
}

/// Creates an account. `password_hash` is a PHC string from
/// [`crate::accounts::password::hash`], or `None` for an account that signs
/// in only through a trusted proxy.
pub fn add_user(
    conn: &Connection,
    name: &str,
    role: Role,
    servers: Option<Vec<String>>,
    password_hash: Option<String>,
) -> Result<User, AccountError> {
    validate_name(name)?;
    let servers = servers.map(validate_tags).transpose()?;
    let now = rfc3339(Utc::now());
    let inserted = conn.execute(
        "INSERT INTO users (name, role, servers, password_hash, created_at, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![
            name,
            role.as_str(),
            crate::accounts::tags_json(&servers),
            password_hash,
            now
        ],
    );
    match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            return Err(AccountError::Exists)
        }
        other => other?,
    };
    get_user(conn, name)?.ok_or(AccountError::NotFound)
}

/// The account called `name`, if any.
pub fn get_user(conn: &Connection, name: &str) -> Result<Option<User>, AccountError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1");
    Ok(conn.query_row(&sql, [name], user_from_row).optional()?)
}

/// Every account, by name.
pub fn list_users(conn: &Connection) -> Result<Vec<User>, AccountError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The stored PHC string of `name`: `Ok(None)` for an unknown user or one
/// without a password (the caller then runs
/// [`crate::accounts::password::verify_dummy`]).
pub fn password_hash_of(conn: &Connection, name: &str) -> Result<Option<String>, AccountError> {
    let hash: Option<Option<String>> = conn
        .query_row("SELECT password_hash FROM users WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(hash.flatten())
}

/// Runs one `UPDATE users SET <assignments>, changed_at = now WHERE name`
/// and returns the changed user; `NotFound` when no row matched.
fn update_user(
    conn: &Connection,
    name: &str,
    assignments: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<User, AccountError> {
    let sql = format!("UPDATE users SET {assignments}, changed_at = ?2 WHERE name = ?3");
    let changed = conn.execute(&sql, params![value, rfc3339(Utc::now()), name])?;
    if changed == 0 {
        return Err(AccountError::NotFound);
    }
    get_user(conn, name)?.ok_or(AccountError::NotFound)
}

/// Replaces the password (a PHC string), or removes it with `None`.
pub fn set_password(conn: &Connection, name: &str, hash: Option<String>) -> Result<User, AccountError> {
    update_user(conn, name, "password_hash = ?1", &hash)
}

/// Disables or enables an account. Disabling also ends its sign-in
/// sessions, so enabling it later does not bring them back.
pub fn set_disabled(conn: &Connection, name: &str, disabled: bool) -> Result<User, AccountError> {
    // Both changes or neither; inside a caller's transaction, theirs
    // already says so (SQLite does not nest BEGIN).
    let tx = if conn.is_autocommit() {
        Some(conn.unchecked_transaction()?)
    } else {
        None
    };
    let user = update_user(conn, name, "disabled = ?1", &disabled)?;
    if disabled {
        delete_sessions_of(conn, name)?;
    }
    if let Some(tx) = tx {
        tx.commit()?;
    }
    Ok(user)
}

/// Changes an account's role.
pub fn set_role(conn: &Connection, name: &str, role: Role) -> Result<User, AccountError> {
    update_user(conn, name, "role = ?1", &role.as_str())
}

/// Limits an account to servers with these tags, or lifts the limit with
/// `None`.
pub fn set_servers(
    conn: &Connection,
    name: &str,
    servers: Option<Vec<String>>,
) -> Result<User, AccountError> {
    let servers = servers.map(validate_tags).transpose()?;
    update_user(conn, name, "servers = ?1", &crate::accounts::tags_json(&servers))
}

/// The access revision: a number that grows whenever a user or a token
/// changes (not when one is merely used). A daemon polls it to notice
/// changes made by another process. Sign-in sessions have a log of their
/// own ([`session_changes`]).
pub fn revision(conn: &Connection) -> Result<i64, AccountError> {
    Ok(
        conn.query_row("SELECT revision FROM auth_revision WHERE id = 1", [], |r| {
            r.get(0)
        })?,
    )
}

/// Everything the in-memory directory needs, read in one transaction so
/// the revision matches the rows.
pub fn load(conn: &mut Connection) -> Result<Loaded, AccountError> {
    let tx = conn.transaction()?;
    let loaded = load_in(&tx)?;
    tx.commit()?;
    Ok(loaded)
}

fn load_in(conn: &Connection) -> Result<Loaded, AccountError> {
    Ok(Loaded {
        revision: revision(conn)?,
        session_seq: session_seq(conn)?.0,
        users: list_users(conn)?,
        tokens: list_tokens_with_digests(conn)?,
        sessions: list_sessions(conn)?,
    })
}

/// What a copy made at access revision `revision` and session log number
/// `session_seq` needs to catch up, read in one transaction: nothing, the
/// sessions started and ended since (the cheap, common case: sign-ins and
/// sign-outs), or everything when accounts or tokens changed or the log no
/// longer reaches back that far.
pub fn changes(
    conn: &mut Connection,
    revision_seen: i64,
    session_seq_seen: i64,
) -> Result<AccessChanges, AccountError> {
    let tx = conn.transaction()?;
    let seq = session_seq(&tx)?.0;
    // a log behind the copy (a database put back from a backup) is
    // another history: start again from it
    let changes = if revision(&tx)? != revision_seen || seq < session_seq_seen {
        AccessChanges::Reload(load_in(&tx)?)
    } else if seq == session_seq_seen {
        AccessChanges::Unchanged
    } else {
        match session_changes(&tx, session_seq_seen)? {
            Some(c) => AccessChanges::Sessions(c),
            None => AccessChanges::Reload(load_in(&tx)?),
        }
    };
    tx.commit()?;
    Ok(changes)
}

/// Applies `change` to account `name` in one transaction, refused whole
/// (10001) when it would leave no enabled admin: the daemon never loses its
/// last admin, which only the command line could undo.
pub fn change_user(conn: &mut Connection, name: &str, change: UserChange) -> Result<User, AppError> {
    let tx = conn.transaction().map_err(db_error)?;
    let mut user = get_user(&tx, name)?
        .ok_or_else(|| AppError::with_detail(ErrorCode::NotFound, format!("no account named '{name}'")))?;
    if let Some(role) = change.role {
        user = set_role(&tx, name, role)?;
    }
    if let Some(servers) = change.servers {
        user = set_servers(&tx, name, servers)?;
    }
    if let Some(hash) = change.password_hash {
        user = set_password(&tx, name, Some(hash))?;
        // a new password ends the sign-ins made with the old one
        delete_sessions_of(&tx, name)?;
    }
    if let Some(disabled) = change.disabled {
        user = set_disabled(&tx, name, disabled)?;
    }
    let admins = list_users(&tx)?
        .iter()
        .filter(|u| u.role == Role::Admin && !u.disabled)
        .count();
    if admins == 0 {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "this would leave no enabled admin",
        ));
    }
    tx.commit().map_err(db_error)?;
    Ok(user)
}

/// An in-memory database with the full schema, for this module's tests.
#[cfg(test)]
pub(crate) fn test_db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    crate::store::sqlite::migrations::migrate(&mut conn).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinkpage_actors::access::ServerScope;

    const HASH: &str = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

    #[test]
    fn a_user_round_trips() {
        let conn = test_db();
        let added = add_user(
            &conn,
            "ana.lee",
            Role::Operator,
            Some(vec!["b".into(), "a".into(), "a".into()]),
            Some(HASH.into()),
        )
        .unwrap();
        assert_eq!(added.name, "ana.lee");
        assert_eq!(added.role, Role::Operator);
        assert_eq!(added.servers, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(!added.disabled && added.has_password);
        assert_eq!(added.created_at, added.changed_at);
        assert_eq!(get_user(&conn, "ana.lee").unwrap(), Some(added.clone()));
        assert_eq!(list_users(&conn).unwrap(), vec![added.clone()]);
        assert_eq!(password_hash_of(&conn, "ana.lee").unwrap().as_deref(), Some(HASH));
        assert_eq!(added.scope(), ServerScope::Tags(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn a_proxy_only_user_has_no_password_and_every_server() {
        let conn = test_db();
        let u = add_user(&conn, "sso@example.com", Role::Viewer, None, None).unwrap();
        assert!(!u.has_password);
        assert_eq!(u.scope(), ServerScope::All);
        assert_eq!(password_hash_of(&conn, "sso@example.com").unwrap(), None);
        assert_eq!(password_hash_of(&conn, "nobody").unwrap(), None);
    }

    #[test]
    fn a_duplicate_name_is_refused() {
        let conn = test_db();
        add_user(&conn, "ana", Role::Admin, None, None).unwrap();
        assert!(matches!(
            add_user(&conn, "ana", Role::Viewer, None, None),
            Err(AccountError::Exists)
        ));
    }

    #[test]
    fn bad_names_and_tags_are_refused() {
        let conn = test_db();
        for name in ["", "-x", ".ana", "ana lee", "ana/lee", "añа", &"a".repeat(65)] {
            let r = add_user(&conn, name, Role::Viewer, None, None);
            assert!(matches!(r, Err(AccountError::Invalid(_))), "{name:?}");
        }
        add_user(&conn, &"a".repeat(64), Role::Viewer, None, None).unwrap();
        for tags in [
            vec![],
            vec!["".to_owned()],
            vec!["a b".to_owned()],
            vec!["a,b".to_owned()],
            vec!["a\u{a0}b".to_owned()],
            vec!["a\u{85}b".to_owned()],
            vec!["a\u{9b}b".to_owned()],
            vec!["é".repeat(65)],
        ] {
            let r = add_user(&conn, "tagged", Role::Viewer, Some(tags.clone()), None);
            assert!(matches!(r, Err(AccountError::Invalid(_))), "{tags:?}");
        }
        // the limit is in characters, as the document says, not bytes
        add_user(&conn, "tagged", Role::Viewer, Some(vec!["é".repeat(64)]), None).unwrap();
    }

    #[test]
    fn setters_change_the_user_and_its_changed_time() {
        let conn = test_db();
        let before = add_user(&conn, "ana", Role::Viewer, None, None).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2)); // distinct millisecond stamps
        let u = set_role(&conn, "ana", Role::Admin).unwrap();
        assert_eq!(u.role, Role::Admin);
        assert!(u.changed_at > before.changed_at);
        assert_eq!(u.created_at, before.created_at);
        let u = set_servers(&conn, "ana", Some(vec!["prod".into()])).unwrap();
        assert_eq!(u.servers, Some(vec!["prod".to_owned()]));
        let u = set_servers(&conn, "ana", None).unwrap();
        assert_eq!(u.servers, None);
        let u = set_password(&conn, "ana", Some(HASH.into())).unwrap();
        assert!(u.has_password);
        assert!(set_disabled(&conn, "ana", true).unwrap().disabled);
        assert!(!set_disabled(&conn, "ana", false).unwrap().disabled);
    }

    #[test]
    fn setters_on_an_unknown_user_are_not_found() {
        let conn = test_db();
        assert!(matches!(
            set_role(&conn, "ghost", Role::Admin),
            Err(AccountError::NotFound)
        ));
        assert!(matches!(
            set_password(&conn, "ghost", None),
            Err(AccountError::NotFound)
        ));
        assert!(matches!(
            set_servers(&conn, "ghost", None),
            Err(AccountError::NotFound)
        ));
        assert!(matches!(
            set_disabled(&conn, "ghost", true),
            Err(AccountError::NotFound)
        ));
    }

    #[test]
    fn every_user_change_bumps_the_revision() {
        let conn = test_db();
        let mut last = revision(&conn).unwrap();
        let mut bumped = |conn: &Connection| {
            let now = revision(conn).unwrap();
            let grew = now > last;
            last = now;
            grew
        };
        add_user(&conn, "ana", Role::Viewer, None, None).unwrap();
        assert!(bumped(&conn));
        set_role(&conn, "ana", Role::Operator).unwrap();
        assert!(bumped(&conn));
        set_disabled(&conn, "ana", true).unwrap();
        assert!(bumped(&conn));
        get_user(&conn, "ana").unwrap();
        list_users(&conn).unwrap();
        assert!(!bumped(&conn), "reading is not a change");
    }

    #[test]
    fn users_serialize_with_the_role_as_a_string_and_no_hash() {
        let conn = test_db();
        let u = add_user(&conn, "ana", Role::Admin, None, Some(HASH.into())).unwrap();
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["role"], "admin");
        assert_eq!(json["servers"], serde_json::Value::Null);
        assert!(!json.to_string().contains("argon2"));
    }
}
