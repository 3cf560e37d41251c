//! Passwords: Argon2id hashes in PHC string form, and the strength rule.
//!
//! A PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) carries its
//! own parameters, so raising [`MEMORY_KIB`] or [`ITERATIONS`] later leaves
//! old hashes verifiable; they are simply cheaper until the user next sets
//! a password.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use pinkpage_actors::secret::Secret;

use super::records::AccountError;

/// Memory per hash, in KiB (64 MiB). Memory is what makes guessing on GPUs
/// expensive, so it is the parameter we spend most on; with
/// [`ITERATIONS`] it puts one hash at about 0.2 s on the project's 2-core
/// machines (measured: `docs/accounts.md`), inside the 50-250 ms a sign-in
/// may take and above OWASP's floor for Argon2id (19 MiB with t=2, or
/// 46 MiB with t=1). t=3 at this size measured about 0.28 s, over budget.
pub const MEMORY_KIB: u32 = 64 * 1024;

/// Passes over the memory. See [`MEMORY_KIB`] for why 2.
pub const ITERATIONS: u32 = 2;

/// Lanes. One: the daemon hashes on a store thread and must not take both
/// cores of a 2-core machine for a single sign-in.
pub const PARALLELISM: u32 = 1;

/// Fewest characters a password may have.
pub const MIN_LENGTH: usize = 12;

/// Most characters a password may have: far above any real passphrase,
/// and it bounds the work one request can ask of the hasher.
pub const MAX_LENGTH: usize = 1024;

/// The hasher with this module's parameters.
fn hasher() -> Argon2<'static> {
    // The constants above are within Argon2's limits, so `Params::new`
    // cannot fail; a unit test holds that.
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt into a PHC string.
pub fn hash(password: &Secret) -> Result<String, AccountError> {
    hasher()
        .hash_password(password.expose().as_bytes())
        .map(|h| h.to_string())
        // The only failures are a broken random source or impossible
        // parameters; neither message holds the password.
        .map_err(|e| AccountError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC string `phc`. A malformed string is a
/// mismatch. The comparison inside the crate is constant-time.
pub fn verify(password: &Secret, phc: &str) -> bool {
    hasher()
        .verify_password(password.expose().as_bytes(), phc)
        .is_ok()
}

/// Spends the time of one [`verify`] against a dummy hash and returns
/// nothing: call it when the user name is unknown (or has no password) so
/// that answer costs the same as a wrong password and names cannot be
/// probed by timing.
pub fn verify_dummy(password: &Secret) {
    let _ = verify(password, DUMMY_HASH);
}

/// A hash of a password nobody knows, made with the current parameters (a
/// unit test fails when they change and this is not remade). A constant,
/// not made at first use: that would make the first unknown-name login
/// slower than the rest, and cost the daemon a hash's memory at start.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=65536,t=2,p=1$4MfX+5Af9Gdkg5bGX4vK4Q$iYyKlFyx+lffuM7yBmd/2erImS9iPH/xj01UhrH7me4";

/// Refuses a password that is too short, too long, one character repeated,
/// or the user's own name.
pub fn check_strength(password: &Secret, user: &str) -> Result<(), AccountError> {
    let text = password.expose();
    let count = text.chars().count();
    if count < MIN_LENGTH {
        return Err(AccountError::WeakPassword(format!(
            "it has {count} characters; at least {MIN_LENGTH} are needed"
        )));
    }
    if count > MAX_LENGTH {
        return Err(AccountError::WeakPassword(format!(
            "it has {count} characters; at most {MAX_LENGTH} are allowed"
        )));
    }
    let mut chars = text.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(AccountError::WeakPassword(
            "it is one character repeated".to_owned(),
        ));
    }
    if text.eq_ignore_ascii_case(user) {
        return Err(AccountError::WeakPassword("it is the user name".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_uses_the_current_parameters() {
        let params = format!("$argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={PARALLELISM}$");
        assert!(DUMMY_HASH.starts_with(&params), "remake DUMMY_HASH with {params}");
    }

    #[test]
    fn the_parameters_are_valid_argon2_parameters() {
        let p = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap();
        assert_eq!(p.m_cost(), MEMORY_KIB);
    }

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let pw = Secret::new("correct horse battery");
        let phc = hash(&pw).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(phc.contains(&format!("m={MEMORY_KIB},t={ITERATIONS},p={PARALLELISM}")));
        assert!(!phc.contains(pw.expose()));
        assert!(verify(&pw, &phc));
        assert!(!verify(&Secret::new("correct horse batterY"), &phc));
        assert!(!verify(&pw, "not a phc string"));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_their_salt() {
        let pw = Secret::new("correct horse battery");
        assert_ne!(hash(&pw).unwrap(), hash(&pw).unwrap());
    }

    #[test]
    fn the_dummy_check_costs_about_as_much_as_a_real_one() {
        let pw = Secret::new("correct horse battery");
        let phc = hash(&pw).unwrap();
        verify_dummy(&pw); // the first call also makes the dummy hash
        let start = std::time::Instant::now();
        verify_dummy(&pw);
        let dummy = start.elapsed();
        let start = std::time::Instant::now();
        assert!(!verify(&Secret::new("wrong password here"), &phc));
        let real = start.elapsed();
        // Generous bounds: this machine is shared, but a dummy that skipped
        // the hash would be a thousand times faster.
        assert!(dummy * 4 > real, "dummy {dummy:?} real {real:?}");
    }

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        let weak = |pw: &str| match check_strength(&Secret::new(pw), "ana.lee") {
            Err(AccountError::WeakPassword(why)) => why,
            other => panic!("{pw:?} was not refused: {other:?}"),
        };
        assert!(weak("short-pw").contains("at least 12"));
        assert!(weak("aaaaaaaaaaaaaaaa").contains("repeated"));
        assert!(weak(&"x".repeat(MAX_LENGTH + 1)).contains("at most"));
        check_strength(&Secret::new("ANA.LEE.ANA.LEE"), "ana.lee").unwrap();
        let same = check_strength(&Secret::new("Ana.Lee.Admin"), "ana.lee.admin");
        assert!(matches!(same, Err(AccountError::WeakPassword(_))));
        check_strength(&Secret::new("correct horse battery"), "ana.lee").unwrap();
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 12 Hangul syllables are 36 bytes but 12 characters: allowed.
        check_strength(&Secret::new("가나다라마바사아자차카타"), "ana").unwrap();
        assert!(check_strength(&Secret::new("가나다라마바사아자차카"), "ana").is_err());
    }

    /// Prints how long one hash takes with the chosen parameters. Run by
    /// hand (`docs/accounts.md` says how); dependencies are optimised even
    /// in test builds, so this is the release-build speed of the hasher.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn hashing_time() {
        let pw = Secret::new("correct horse battery");
        let _ = hash(&pw).unwrap();
        let runs: u32 = 10;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            let _ = hash(&pw).unwrap();
        }
        println!(
            "argon2id m={MEMORY_KIB} KiB t={ITERATIONS} p={PARALLELISM}: {:?} per hash",
            start.elapsed() / runs
        );
    }
}
