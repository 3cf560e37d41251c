//! [`Secret`]: a string that must never be printed.
//!
//! Passwords and key passphrases live in this type from the moment they are
//! read from the environment. `Debug` and `Display` print a placeholder, it
//! has no `Serialize`, and the only way to the bytes is [`Secret::expose`],
//! which is easy to grep for.

use std::fmt;

/// A secret string; prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is handed to the SSH library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    /// Overwrites the bytes so a freed password does not linger on the heap.
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        // keep the zeroing from being optimised away as a dead store
        std::hint::black_box(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn a_struct_holding_a_secret_does_not_leak_it_through_derive_debug() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Creds {
            user: String,
            password: Secret,
        }
        let c = Creds { user: "u".into(), password: Secret::new("pa55") };
        assert!(!format!("{c:?}").contains("pa55"));
    }
}
