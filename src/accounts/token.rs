//! API tokens and cookie secrets: how they look, how they are made, how
//! they are compared.
//!
//! A token is `ppt_<id>_<secret>`: `ppt_` makes a leaked token easy to
//! recognise (and to scan for), `<id>` is 12 lowercase hex characters, the
//! public id shown by `token list` and in logs, and `<secret>` is 32 random
//! bytes, base64url without padding. The database keeps only the hex
//! SHA-256 of the whole token: a token has 256 random bits, so a fast hash
//! is enough (a slow one like Argon2 is for guessable passwords), and every
//! request can be checked cheaply.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pinkpage_actors::secret::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token starts with.
pub const PREFIX: &str = "ppt_";

/// Characters in a public id (tokens and sessions).
const ID_LEN: usize = 12;

/// Random bytes in a token's secret part and in a session cookie.
const SECRET_BYTES: usize = 32;

/// Length of [`SECRET_BYTES`] in base64url without padding.
const SECRET_LEN: usize = 43;

/// A well-formed token, borrowed from the text it was parsed from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// The public id part.
    id: &'a str,
    /// The whole token, which is what is digested.
    full: &'a str,
}

impl<'a> Token<'a> {
    /// Makes a new token: its public id, and the whole token to show once.
    pub fn generate() -> (String, Secret) {
        let id = new_public_id();
        let full = format!("{PREFIX}{id}_{}", random_secret());
        (id, Secret::new(full))
    }

    /// Reads a token as presented (for example after `Bearer `); `None`
    /// for anything that is not exactly the token format, so junk never
    /// reaches the database.
    pub fn parse(text: &'a str) -> Option<Token<'a>> {
        let rest = text.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id_ok = id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        // base64url's alphabet includes '_', so the secret may contain it;
        // the id never does, which is why the first '_' splits them.
        let secret_ok = secret.len() == SECRET_LEN
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (id_ok && secret_ok).then_some(Token { id, full: text })
    }

    /// The public id.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The digest stored for this token.
    pub fn digest(&self) -> String {
        digest(self.full)
    }
}

impl std::fmt::Debug for Token<'_> {
    /// Shows the public id only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A new session cookie value: 32 random bytes, base64url.
pub fn new_session_secret() -> Secret {
    Secret::new(random_secret())
}

/// A new public id: 12 random lowercase hex characters (48 bits; ids are
/// not secrets, only names, and the primary key catches a collision).
pub fn new_public_id() -> String {
    hex(&random_bytes::<{ ID_LEN / 2 }>())
}

/// The hex SHA-256 of a token or cookie value: what the database stores.
pub fn digest(full: &str) -> String {
    hex(&Sha256::digest(full.as_bytes()))
}

/// Whether two digests are equal, in time that does not depend on where
/// they first differ.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The operating system's random source does not fail on the systems
    // we run on; if it ever did, an all-zero secret must not be handed
    // out, so stopping is the only safe answer.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// [`SECRET_BYTES`] random bytes, base64url without padding.
fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// When a token asked for at `now` with `expires_in` ends (`None`:
/// never), or why it cannot be made with that label or expiry: every
/// store's `create_token` checks a request with it before writing.
pub fn checked_request(
    label: &str,
    now: chrono::DateTime<chrono::Utc>,
    expires_in: Option<chrono::Duration>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, super::AccountError> {
    if label.chars().count() > super::MAX_LABEL_LEN || label.chars().any(|c| crate::text::CONTROL.contains(c))
    {
        return Err(super::AccountError::Invalid(format!(
            "token label must be at most {} characters, without control characters",
            super::MAX_LABEL_LEN
        )));
    }
    match expires_in {
        None => Ok(None),
        Some(d) if d > chrono::Duration::zero() => now
            .checked_add_signed(d)
            .map(Some)
            .ok_or_else(|| super::AccountError::Invalid("token expiry is too far away".to_owned())),
        Some(_) => Err(super::AccountError::Invalid(
            "token expiry must be in the future".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_to_its_id() {
        let (id, full) = Token::generate();
        assert_eq!(id.len(), 12);
        assert!(full.expose().starts_with(&format!("ppt_{id}_")));
        let t = Token::parse(full.expose()).unwrap();
        assert_eq!(t.id(), id);
        assert_eq!(t.digest(), digest(full.expose()));
    }

    #[test]
    fn tokens_are_different_every_time() {
        let (a_id, a) = Token::generate();
        let (b_id, b) = Token::generate();
        assert_ne!(a_id, b_id);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn junk_is_not_a_token() {
        let (_, full) = Token::generate();
        let good = full.expose();
        let secret = &good[17..];
        for junk in [
            "",
            "ppt_",
            "Bearer ppt_",
            &good[..good.len() - 1],
            &format!("{good}x"),
            &format!("xpt_{}", &good[4..]),
            &format!("ppt_ABCDEF012345_{secret}"),
            &format!("ppt_0123456789a_{secret}"),
            &format!("ppt_0123456789ab_{}!", &secret[1..]),
            "ppt_0123456789ab",
        ] {
            assert!(Token::parse(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn a_digest_is_hex_sha256_and_never_the_token() {
        let (_, full) = Token::generate();
        let d = digest(full.expose());
        assert_eq!(d.len(), 64);
        assert!(d.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(d, full.expose());
        assert!(!d.contains(&full.expose()[17..]));
        // a known vector, so the format cannot drift
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn digests_compare_equal_only_when_equal() {
        assert!(digests_equal(&digest("a"), &digest("a")));
        assert!(!digests_equal(&digest("a"), &digest("b")));
        assert!(!digests_equal(&digest("a"), ""));
    }

    #[test]
    fn session_secrets_and_ids_have_their_shapes() {
        let s = new_session_secret();
        assert_eq!(s.expose().len(), 43);
        assert_ne!(s.expose(), new_session_secret().expose());
        let id = new_public_id();
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }

    #[test]
    fn debug_shows_the_id_but_not_the_secret() {
        let (id, full) = Token::generate();
        let shown = format!("{:?}", Token::parse(full.expose()).unwrap());
        assert!(shown.contains(&id));
        assert!(!shown.contains(&full.expose()[17..]));
    }
}
