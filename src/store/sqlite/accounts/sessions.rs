//! The `web_sessions` table: server-side sign-in sessions, found by the
//! digest of their cookie value (the cookie itself is never stored), and
//! the `session_log` its triggers write (migration 8): every session
//! started or ended gets the next number of `auth_revision.sessions`, so a
//! daemon catches up by reading what changed after the number it has seen
//! ([`session_changes`]).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::accounts::token::new_public_id;
use crate::accounts::{AccountError, SessionChanges, SessionRow, StartedSession};
use crate::records::timestamp as rfc3339;

pub use crate::accounts::SESSION_LOG_KEPT;

const SESSION_COLUMNS: &str =
    "s.id, s.secret_hash, u.name, s.created_at, s.last_seen_at, s.expires_at, s.remote_addr, s.seq";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        user: r.get(2)?,
        created_at: r.get(3)?,
        last_seen_at: r.get(4)?,
        expires_at: r.get(5)?,
        remote_addr: r.get(6)?,
        seq: r.get(7)?,
    })
}

/// Starts a session for `user` (who must exist and not be disabled),
/// ending at `expires_at` at the latest, and ends the user's oldest
/// sessions so that at most `per_user` (at least 1) remain with the new
/// one; both or neither. `secret_hash` is
/// [`crate::accounts::token::digest`] of the cookie value from
/// [`crate::accounts::token::new_session_secret`]; the public id is made
/// here.
pub fn create_session(
    conn: &Connection,
    user: &str,
    secret_hash: &str,
    expires_at: DateTime<Utc>,
    remote_addr: Option<&str>,
    per_user: usize,
) -> Result<StartedSession, AccountError> {
    // inside a caller's transaction, theirs already makes it whole
    let tx = if conn.is_autocommit() {
        Some(conn.unchecked_transaction()?)
    } else {
        None
    };
    let (user_id, disabled): (i64, bool) = conn
        .query_row("SELECT id, disabled FROM users WHERE name = ?1", [user], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or(AccountError::NotFound)?;
    if disabled {
        return Err(AccountError::Invalid("the account is disabled".to_owned()));
    }
    let keep = per_user.max(1) - 1;
    let ended: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT id FROM web_sessions WHERE user_id = ?1 ORDER BY seq DESC, id DESC LIMIT -1 OFFSET ?2",
        )?;
        let rows = stmt.query_map(params![user_id, keep as i64], |r| r.get(0))?;
        let mut ids = rows.collect::<Result<Vec<String>, _>>()?;
        ids.reverse(); // oldest first
        ids
    };
    for old in &ended {
        delete_session(conn, old)?;
    }
    let id = new_public_id();
    let now = rfc3339(Utc::now());
    conn.execute(
        "INSERT INTO web_sessions (id, secret_hash, user_id, created_at, last_seen_at, expires_at, remote_addr)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
        params![id, secret_hash, user_id, now, rfc3339(expires_at), remote_addr],
    )?;
    let session = get_session(conn, &id)?.ok_or(AccountError::NotFound)?;
    if let Some(tx) = tx {
        tx.commit()?;
    }
    Ok(StartedSession { session, ended })
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
         ORDER BY s.seq, s.id"
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

/// Removes sessions whose absolute lifetime ended by `now` and those
/// unused for `idle` or longer by then; how many.
pub fn delete_ended_sessions(
    conn: &Connection,
    now: DateTime<Utc>,
    idle: chrono::Duration,
) -> Result<usize, AccountError> {
    // Every time is written by `rfc3339`, so string order is time order.
    // An idle lifetime too long to subtract never runs out.
    let idle_since = now.checked_sub_signed(idle).map(rfc3339).unwrap_or_default();
    Ok(conn.execute(
        "DELETE FROM web_sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2",
        params![rfc3339(now), idle_since],
    )?)
}

/// The session log's current number and the highest number pruned from
/// it.
pub fn session_seq(conn: &Connection) -> Result<(i64, i64), AccountError> {
    Ok(conn.query_row(
        "SELECT sessions, sessions_pruned FROM auth_revision WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// What changed after number `since` of the session log; `None` when the
/// log no longer reaches back that far (pruned): the caller reloads whole.
pub fn session_changes(conn: &Connection, since: i64) -> Result<Option<SessionChanges>, AccountError> {
    let (seq, pruned) = session_seq(conn)?;
    if since < pruned {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM session_log l
         JOIN web_sessions s ON s.id = l.session_id JOIN users u ON u.id = s.user_id
         WHERE l.seq > ?1 AND l.ended = 0 ORDER BY l.seq"
    );
    let mut stmt = conn.prepare(&sql)?;
    let started = stmt
        .query_map([since], session_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt =
        conn.prepare("SELECT session_id FROM session_log WHERE seq > ?1 AND ended = 1 ORDER BY seq")?;
    let ended = stmt
        .query_map([since], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(SessionChanges { seq, started, ended }))
}

/// Forgets the session log's entries written before `before`; how many.
/// A daemon that had not read them reloads whole at its next look.
pub fn prune_session_log(conn: &Connection, before: DateTime<Utc>) -> Result<usize, AccountError> {
    let last: Option<i64> = conn.query_row(
        "SELECT max(seq) FROM session_log WHERE at < ?1",
        [rfc3339(before)],
        |r| r.get(0),
    )?;
    let Some(last) = last else {
        return Ok(0);
    };
    let gone = conn.execute("DELETE FROM session_log WHERE seq <= ?1", [last])?;
    conn.execute(
        "UPDATE auth_revision SET sessions_pruned = max(sessions_pruned, ?1) WHERE id = 1",
        [last],
    )?;
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::super::{add_user, revision, set_disabled, test_db};
    use super::*;
    use crate::accounts::token::{digest, new_session_secret};
    use chrono::Duration;
    use pinkpage_actors::access::Role;

    const PLENTY: usize = 1000;

    fn with_users() -> Connection {
        let conn = test_db();
        add_user(&conn, "ana", Role::Operator, None, None).unwrap();
        add_user(&conn, "bob", Role::Viewer, None, None).unwrap();
        conn
    }

    fn start(conn: &Connection, user: &str, lifetime: Duration) -> SessionRow {
        start_capped(conn, user, lifetime, PLENTY).session
    }

    fn start_capped(conn: &Connection, user: &str, lifetime: Duration, per_user: usize) -> StartedSession {
        let cookie = new_session_secret();
        let hash = digest(cookie.expose());
        create_session(
            conn,
            user,
            &hash,
            Utc::now() + lifetime,
            Some("127.0.0.1"),
            per_user,
        )
        .unwrap()
    }

    #[test]
    fn a_session_round_trips_by_id_and_by_cookie_digest() {
        let conn = with_users();
        let cookie = new_session_secret();
        let hash = digest(cookie.expose());
        let started =
            create_session(&conn, "ana", &hash, Utc::now() + Duration::hours(8), None, PLENTY).unwrap();
        assert!(started.ended.is_empty());
        let s = started.session;
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
            create_session(&conn, "ghost", "h", far, None, PLENTY),
            Err(AccountError::NotFound)
        ));
        set_disabled(&conn, "bob", true).unwrap();
        assert!(matches!(
            create_session(&conn, "bob", "h", far, None, PLENTY),
            Err(AccountError::Invalid(_))
        ));
    }

    #[test]
    fn sessions_move_the_session_log_and_not_the_access_revision() {
        let conn = with_users();
        let r0 = revision(&conn).unwrap();
        let (q0, _) = session_seq(&conn).unwrap();
        let s = start(&conn, "ana", Duration::hours(1));
        let (q1, _) = session_seq(&conn).unwrap();
        assert!(q1 > q0);
        assert_eq!(s.seq, q1, "a session carries its number");
        let later = Utc::now() + Duration::minutes(5);
        touch_session(&conn, &s.id, later).unwrap();
        assert_eq!(
            session_seq(&conn).unwrap().0,
            q1,
            "using a session is not a change"
        );
        assert_eq!(
            get_session(&conn, &s.id).unwrap().unwrap().last_seen_at,
            rfc3339(later)
        );
        assert!(delete_session(&conn, &s.id).unwrap());
        assert!(session_seq(&conn).unwrap().0 > q1);
        assert_eq!(
            revision(&conn).unwrap(),
            r0,
            "a sign-in or sign-out reloads no account or token"
        );
        assert!(!delete_session(&conn, &s.id).unwrap());
        assert!(matches!(
            touch_session(&conn, &s.id, later),
            Err(AccountError::NotFound)
        ));
    }

    #[test]
    fn the_session_log_says_what_changed_since_a_number() {
        let conn = with_users();
        let (q0, _) = session_seq(&conn).unwrap();
        let kept = start(&conn, "ana", Duration::hours(1));
        let gone = start(&conn, "bob", Duration::hours(1));
        delete_session(&conn, &gone.id).unwrap();
        let changes = session_changes(&conn, q0).unwrap().unwrap();
        assert_eq!(changes.seq, session_seq(&conn).unwrap().0);
        // a session started and ended since is only among the ended
        assert_eq!(changes.started, vec![kept.clone()]);
        assert_eq!(changes.ended, vec![gone.id.clone()]);
        // from the newest number, nothing
        let none = session_changes(&conn, changes.seq).unwrap().unwrap();
        assert!(none.started.is_empty() && none.ended.is_empty());
        // ended through the account (the command line's passwd) too
        super::super::delete_sessions_of(&conn, "ana").unwrap();
        let after = session_changes(&conn, changes.seq).unwrap().unwrap();
        assert_eq!(after.ended, vec![kept.id]);
    }

    #[test]
    fn a_pruned_log_sends_a_reader_that_is_behind_to_a_whole_reload() {
        let conn = with_users();
        let (q0, _) = session_seq(&conn).unwrap();
        start(&conn, "ana", Duration::hours(1));
        let (q1, _) = session_seq(&conn).unwrap();
        assert_eq!(
            prune_session_log(&conn, Utc::now() - Duration::minutes(1)).unwrap(),
            0
        );
        assert!(session_changes(&conn, q0).unwrap().is_some());
        assert_eq!(
            prune_session_log(&conn, Utc::now() + Duration::minutes(1)).unwrap(),
            1
        );
        assert_eq!(
            session_changes(&conn, q0).unwrap(),
            None,
            "the log no longer reaches back"
        );
        let current = session_changes(&conn, q1).unwrap().unwrap();
        assert!(current.started.is_empty() && current.ended.is_empty());
    }

    #[test]
    fn past_the_per_user_cap_the_oldest_sessions_end() {
        let conn = with_users();
        let bobs = start(&conn, "bob", Duration::hours(1));
        let mut anas = Vec::new();
        for _ in 0..3 {
            let started = start_capped(&conn, "ana", Duration::hours(1), 3);
            assert!(started.ended.is_empty());
            anas.push(started.session);
        }
        let fourth = start_capped(&conn, "ana", Duration::hours(1), 3);
        assert_eq!(fourth.ended, vec![anas[0].id.clone()]);
        // a lower cap ends as many as it takes, oldest first
        let fifth = start_capped(&conn, "ana", Duration::hours(1), 2);
        assert_eq!(fifth.ended, vec![anas[1].id.clone(), anas[2].id.clone()]);
        let left: Vec<String> = list_sessions(&conn).unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(left, vec![bobs.id, fourth.session.id, fifth.session.id]);
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
    fn expired_and_idle_sessions_are_swept_and_no_other() {
        let conn = with_users();
        let idle = Duration::minutes(30);
        let short = start(&conn, "ana", Duration::minutes(1));
        let long = start(&conn, "ana", Duration::hours(1));
        let used = start(&conn, "bob", Duration::hours(1));
        assert_eq!(delete_ended_sessions(&conn, Utc::now(), idle).unwrap(), 0);
        let in_ten_minutes = Utc::now() + Duration::minutes(10);
        assert_eq!(delete_ended_sessions(&conn, in_ten_minutes, idle).unwrap(), 1);
        let left = list_sessions(&conn).unwrap();
        assert_eq!(left, vec![long.clone(), used.clone()]);
        assert_ne!(left[0].id, short.id);
        // forty minutes on, only the session used meanwhile is left
        let in_forty_minutes = Utc::now() + Duration::minutes(40);
        touch_session(&conn, &used.id, in_forty_minutes - Duration::minutes(1)).unwrap();
        assert_eq!(delete_ended_sessions(&conn, in_forty_minutes, idle).unwrap(), 1);
        let left: Vec<String> = list_sessions(&conn).unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(left, vec![used.id]);
    }
}
