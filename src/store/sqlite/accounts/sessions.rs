//! The `web_sessions` table: server-side sign-in sessions, found by the
//! digest of their cookie value (the cookie itself is never stored).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::accounts::token::new_public_id;
use crate::accounts::{AccountError, SessionRow};
use crate::records::timestamp as rfc3339;

const SESSION_COLUMNS: &str =
    "s.id, s.secret_hash, u.name, s.created_at, s.last_seen_at, s.expires_at, s.remote_addr";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        user: r.get(2)?,
        created_at: r.get(3)?,
        last_seen_at: r.get(4)?,
        expires_at: r.get(5)?,
        remote_addr: r.get(6)?,
    })
}

/// Starts a session for `user` (who must exist and not be disabled),
/// ending at `expires_at` at the latest. `secret_hash` is
/// [`crate::accounts::token::digest`] of the cookie value from
/// [`crate::accounts::token::new_session_secret`]; the public id is made
/// here.
pub fn create_session(
    conn: &Connection,
    user: &str,
    secret_hash: &str,
    expires_at: DateTime<Utc>,
    remote_addr: Option<&str>,
) -> Result<SessionRow, AccountError> {
    let (user_id, disabled): (i64, bool) = conn
        .query_row("SELECT id, disabled FROM users WHERE name = ?1", [user], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or(AccountError::NotFound)?;
    if disabled {
        return Err(AccountError::Invalid("the account is disabled".to_owned()));
    }
    let id = new_public_id();
    let now = rfc3339(Utc::now());
    conn.execute(
        "INSERT INTO web_sessions (id, secret_hash, user_id, created_at, last_seen_at, expires_at, remote_addr)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
        params![id, secret_hash, user_id, now, rfc3339(expires_at), remote_addr],
    )?;
    get_session(conn, &id)?.ok_or(AccountError::NotFound)
}

/// A session by public id.
pub fn get_session(conn: &Connection, id: &str) -> Result<Option<SessionRow>, AccountError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1"
    );
    Ok(conn.query_row(&sql, [id], session_from_row).optional()?)
}

/// The session whose cookie has this digest. Lifetimes are the caller's
/// to judge (idle and absolute limits are settings of the daemon).
pub fn find_session_by_hash(
    conn: &Connection,
    secret_hash: &str,
) -> Result<Option<SessionRow>, AccountError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.secret_hash = ?1"
    );
    Ok(conn.query_row(&sql, [secret_hash], session_from_row).optional()?)
}

/// Every session, oldest first.
pub fn list_sessions(conn: &Connection) -> Result<Vec<SessionRow>, AccountError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.id = s.user_id
         ORDER BY s.created_at, s.id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], session_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Ends one session (sign-out); whether it existed.
pub fn delete_session(conn: &Connection, id: &str) -> Result<bool, AccountError> {
    Ok(conn.execute("DELETE FROM web_sessions WHERE id = ?1", [id])? > 0)
}

/// Ends every session of `user`; how many there were.
pub fn delete_sessions_of(conn: &Connection, user: &str) -> Result<usize, AccountError> {
    Ok(conn.execute(
        "DELETE FROM web_sessions WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
        [user],
    )?)
}

/// Records activity on a session at `at` (for its idle lifetime). Not a
/// change of access: the revision does not move.
pub fn touch_session(conn: &Connection, id: &str, at: DateTime<Utc>) -> Result<(), AccountError> {
    let changed = conn.execute(
        "UPDATE web_sessions SET last_seen_at = ?1 WHERE id = ?2",
        params![rfc3339(at), id],
    )?;
    if changed == 0 {
        return Err(AccountError::NotFound);
    }
    Ok(())
}

/// Removes sessions whose absolute lifetime ended by `now`; how many.
pub fn delete_expired_sessions(conn: &Connection, now: DateTime<Utc>) -> Result<usize, AccountError> {
    // Every time is written by `rfc3339`, so string order is time order.
    Ok(conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?1", [rfc3339(now)])?)
}

#[cfg(test)]
mod tests {
    use super::super::{add_user, revision, set_disabled, test_db};
    use super::*;
    use crate::accounts::token::{digest, new_session_secret};
    use chrono::Duration;
    use pinkpage_actors::access::Role;

    fn with_users() -> Connection {
        let conn = test_db();
        add_user(&conn, "ana", Role::Operator, None, None).unwrap();
        add_user(&conn, "bob", Role::Viewer, None, None).unwrap();
        conn
    }

    fn start(conn: &Connection, user: &str, lifetime: Duration) -> SessionRow {
        let cookie = new_session_secret();
        let hash = digest(cookie.expose());
        create_session(conn, user, &hash, Utc::now() + lifetime, Some("127.0.0.1")).unwrap()
    }

    #[test]
    fn a_session_round_trips_by_id_and_by_cookie_digest() {
        let conn = with_users();
        let cookie = new_session_secret();
        let hash = digest(cookie.expose());
        let s = create_session(&conn, "ana", &hash, Utc::now() + Duration::hours(8), None).unwrap();
        assert_eq!(s.user, "ana");
        assert_eq!(s.id.len(), 12);
        assert_ne!(s.secret_hash, cookie.expose());
        assert_eq!(s.created_at, s.last_seen_at);
        assert_eq!(get_session(&conn, &s.id).unwrap(), Some(s.clone()));
        assert_eq!(find_session_by_hash(&conn, &hash).unwrap(), Some(s.clone()));
        assert_eq!(find_session_by_hash(&conn, &digest("other")).unwrap(), None);
        assert_eq!(list_sessions(&conn).unwrap(), vec![s.clone()]);
        assert!(!serde_json::to_string(&s).unwrap().contains(&hash));
    }

    #[test]
    fn sessions_need_an_enabled_existing_user() {
        let conn = with_users();
        let far = Utc::now() + Duration::hours(1);
        assert!(matches!(
            create_session(&conn, "ghost", "h", far, None),
            Err(AccountError::NotFound)
        ));
        set_disabled(&conn, "bob", true).unwrap();
        assert!(matches!(
            create_session(&conn, "bob", "h", far, None),
            Err(AccountError::Invalid(_))
        ));
    }

    #[test]
    fn creating_and_deleting_bump_the_revision_but_touching_does_not() {
        let conn = with_users();
        let r0 = revision(&conn).unwrap();
        let s = start(&conn, "ana", Duration::hours(1));
        let r1 = revision(&conn).unwrap();
        assert!(r1 > r0);
        let later = Utc::now() + Duration::minutes(5);
        touch_session(&conn, &s.id, later).unwrap();
        assert_eq!(revision(&conn).unwrap(), r1);
        assert_eq!(
            get_session(&conn, &s.id).unwrap().unwrap().last_seen_at,
            rfc3339(later)
        );
        assert!(delete_session(&conn, &s.id).unwrap());
        assert!(revision(&conn).unwrap() > r1);
        assert!(!delete_session(&conn, &s.id).unwrap());
        assert!(matches!(
            touch_session(&conn, &s.id, later),
            Err(AccountError::NotFound)
        ));
    }

    #[test]
    fn ending_a_users_sessions_leaves_the_others() {
        let conn = with_users();
        start(&conn, "ana", Duration::hours(1));
        start(&conn, "ana", Duration::hours(1));
        let bobs = start(&conn, "bob", Duration::hours(1));
        assert_eq!(delete_sessions_of(&conn, "ana").unwrap(), 2);
        assert_eq!(list_sessions(&conn).unwrap(), vec![bobs]);
    }

    #[test]
    fn disabling_a_user_ends_its_sessions() {
        let conn = with_users();
        start(&conn, "ana", Duration::hours(1));
        set_disabled(&conn, "ana", true).unwrap();
        assert!(list_sessions(&conn).unwrap().is_empty());
    }

    #[test]
    fn only_expired_sessions_are_swept() {
        let conn = with_users();
        let short = start(&conn, "ana", Duration::minutes(1));
        let long = start(&conn, "ana", Duration::hours(1));
        assert_eq!(delete_expired_sessions(&conn, Utc::now()).unwrap(), 0);
        let in_ten_minutes = Utc::now() + Duration::minutes(10);
        assert_eq!(delete_expired_sessions(&conn, in_ten_minutes).unwrap(), 1);
        let left = list_sessions(&conn).unwrap();
        assert_eq!(left, vec![long]);
        assert_ne!(left[0].id, short.id);
    }
}
