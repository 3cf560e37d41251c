//! The `api_tokens` table: tokens for scripts, stored as digests only.

use chrono::{DateTime, Duration, Utc};
use pinkpage_actors::secret::Secret;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::accounts::token::{digests_equal, Token};
use crate::accounts::{AccountError, TokenInfo, TokenState};
use crate::records::timestamp as rfc3339;

const TOKEN_COLUMNS: &str = "t.id, u.name, t.label, t.created_at, t.expires_at, t.revoked_at, t.last_used_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        user: r.get(1)?,
        label: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
        last_used_at: r.get(6)?,
    })
}

/// Creates a token for `user`, expiring after `expires_in` (`None`:
/// never). Returns its listing and the whole token, which exists nowhere
/// else: show it once.
pub fn create_token(
    conn: &Connection,
    user: &str,
    label: &str,
    expires_in: Option<Duration>,
) -> Result<(TokenInfo, Secret), AccountError> {
    let now = Utc::now();
    let expires_at = crate::accounts::token::checked_request(label, now, expires_in)?;
    let user_id: i64 = conn
        .query_row("SELECT id FROM users WHERE name = ?1", [user], |r| r.get(0))
        .optional()?
        .ok_or(AccountError::NotFound)?;
    let (id, full) = Token::generate();
    let digest = crate::accounts::token::digest(full.expose());
    conn.execute(
        "INSERT INTO api_tokens (id, user_id, label, secret_hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, user_id, label, digest, rfc3339(now), expires_at.map(rfc3339)],
    )?;
    let info = find_token(conn, &id)?.ok_or(AccountError::NotFound)?.0;
    Ok((info, full))
}

/// Every token (of `user` when given), newest first.
pub fn list_tokens(conn: &Connection, user: Option<&str>) -> Result<Vec<TokenInfo>, AccountError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.created_at DESC, t.id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([user], token_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Revokes a token; revoking it again keeps the first time.
pub fn revoke_token(conn: &Connection, id: &str) -> Result<TokenInfo, AccountError> {
    let now = rfc3339(Utc::now());
    conn.execute(
        "UPDATE api_tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
        params![now, id],
    )?;
    Ok(find_token(conn, id)?.ok_or(AccountError::NotFound)?.0)
}

/// Every token with its stored digest, in one query (what the daemon's
/// in-memory copy is loaded from).
pub fn list_tokens_with_digests(conn: &Connection) -> Result<Vec<(TokenInfo, String)>, AccountError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS}, t.secret_hash FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| Ok((token_from_row(r)?, r.get(7)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A token by public id, with its stored digest.
pub fn find_token(conn: &Connection, id: &str) -> Result<Option<(TokenInfo, String)>, AccountError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS}, t.secret_hash FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.id = ?1"
    );
    Ok(conn
        .query_row(&sql, [id], |r| Ok((token_from_row(r)?, r.get(7)?)))
        .optional()?)
}

/// Checks a token as presented: well formed, known, the digest equal
/// (compared in constant time), neither revoked nor expired at `now`.
/// Returns its listing; whether its user is disabled is the caller's
/// question. `Ok(None)` means "not a valid token", whatever the reason, so
/// the answer tells a guesser nothing.
pub fn check_token(
    conn: &Connection,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<Option<TokenInfo>, AccountError> {
    let Some(token) = Token::parse(presented) else {
        return Ok(None);
    };
    let Some((info, stored)) = find_token(conn, token.id())? else {
        return Ok(None);
    };
    let valid = digests_equal(&token.digest(), &stored) && info.state(now) == TokenState::Active;
    Ok(valid.then_some(info))
}

/// Records that a token was used at `at`. Not a change of access: the
/// revision does not move.
pub fn touch_token(conn: &Connection, id: &str, at: DateTime<Utc>) -> Result<(), AccountError> {
    let changed = conn.execute(
        "UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2",
        params![rfc3339(at), id],
    )?;
    if changed == 0 {
        return Err(AccountError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{add_user, revision, test_db};
    use super::*;
    use crate::accounts::token::digest;
    use crate::accounts::MAX_LABEL_LEN;
    use pinkpage_actors::access::Role;

    fn with_user() -> Connection {
        let conn = test_db();
        add_user(&conn, "ana", Role::Operator, None, None).unwrap();
        conn
    }

    #[test]
    fn a_token_round_trips_and_checks() {
        let conn = with_user();
        let (info, full) = create_token(&conn, "ana", "deploy script", Some(Duration::days(30))).unwrap();
        assert_eq!(info.user, "ana");
        assert_eq!(info.label, "deploy script");
        assert!(info.expires_at.is_some() && info.revoked_at.is_none() && info.last_used_at.is_none());
        assert!(full.expose().starts_with(&format!("ppt_{}_", info.id)));
        let (found, stored) = find_token(&conn, &info.id).unwrap().unwrap();
        assert_eq!(found, info);
        assert_eq!(stored, digest(full.expose()));
        assert_ne!(stored, full.expose());
        assert_eq!(
            check_token(&conn, full.expose(), Utc::now()).unwrap(),
            Some(info.clone())
        );
        assert_eq!(list_tokens(&conn, Some("ana")).unwrap(), vec![info.clone()]);
        assert_eq!(list_tokens(&conn, None).unwrap(), vec![info]);
        assert!(list_tokens(&conn, Some("bob")).unwrap().is_empty());
    }

    #[test]
    fn a_wrong_secret_with_a_real_id_is_refused() {
        let conn = with_user();
        let (info, full) = create_token(&conn, "ana", "", None).unwrap();
        let mut forged = full.expose().to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(check_token(&conn, &forged, Utc::now()).unwrap().is_none());
        assert!(check_token(&conn, "junk", Utc::now()).unwrap().is_none());
        assert!(check_token(&conn, full.expose(), Utc::now()).unwrap().is_some());
        assert_eq!(info.expires_at, None);
    }

    #[test]
    fn revoked_and_expired_tokens_are_listed_as_such_and_refused() {
        let conn = with_user();
        let (a, a_full) = create_token(&conn, "ana", "a", Some(Duration::hours(1))).unwrap();
        let (b, b_full) = create_token(&conn, "ana", "b", Some(Duration::hours(1))).unwrap();
        let revoked = revoke_token(&conn, &a.id).unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(revoke_token(&conn, &a.id).unwrap().revoked_at, revoked.revoked_at);
        let now = Utc::now();
        let later = now + Duration::hours(2);
        let listed = list_tokens(&conn, None).unwrap();
        let state = |id: &str, at| listed.iter().find(|t| t.id == id).unwrap().state(at);
        assert_eq!(state(&a.id, now), TokenState::Revoked);
        assert_eq!(state(&b.id, now), TokenState::Active);
        assert_eq!(state(&b.id, later), TokenState::Expired);
        assert!(check_token(&conn, a_full.expose(), now).unwrap().is_none());
        assert!(check_token(&conn, b_full.expose(), later).unwrap().is_none());
        assert!(matches!(
            revoke_token(&conn, "000000000000"),
            Err(AccountError::NotFound)
        ));
    }

    #[test]
    fn bad_token_requests_are_refused() {
        let conn = with_user();
        assert!(matches!(
            create_token(&conn, "ghost", "", None),
            Err(AccountError::NotFound)
        ));
        for control in ["a\nb", "a\u{7f}b", "a\u{9b}b"] {
            assert!(
                matches!(
                    create_token(&conn, "ana", control, None),
                    Err(AccountError::Invalid(_))
                ),
                "{control:?}"
            );
        }
        // the limit is in characters, not bytes
        create_token(&conn, "ana", &"é".repeat(MAX_LABEL_LEN), None).unwrap();
        let long = "x".repeat(MAX_LABEL_LEN + 1);
        assert!(matches!(
            create_token(&conn, "ana", &long, None),
            Err(AccountError::Invalid(_))
        ));
        let past = Some(Duration::seconds(-1));
        assert!(matches!(
            create_token(&conn, "ana", "", past),
            Err(AccountError::Invalid(_))
        ));
    }

    #[test]
    fn creating_and_revoking_bump_the_revision_but_using_does_not() {
        let conn = with_user();
        let r0 = revision(&conn).unwrap();
        let (info, _) = create_token(&conn, "ana", "", None).unwrap();
        let r1 = revision(&conn).unwrap();
        assert!(r1 > r0);
        touch_token(&conn, &info.id, Utc::now()).unwrap();
        assert_eq!(revision(&conn).unwrap(), r1);
        assert!(find_token(&conn, &info.id)
            .unwrap()
            .unwrap()
            .0
            .last_used_at
            .is_some());
        revoke_token(&conn, &info.id).unwrap();
        assert!(revision(&conn).unwrap() > r1);
        assert!(matches!(
            touch_token(&conn, "000000000000", Utc::now()),
            Err(AccountError::NotFound)
        ));
    }
}
