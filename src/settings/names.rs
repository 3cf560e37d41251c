//! The rule every configured name follows (servers, transfers, workflows,
//! their parameters): shared by the servers file and the workflow checks.

/// Names are used in URLs, logs and JSON keys: keep them plain.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} name '{name}' must be 1-64 characters of a-z, A-Z, 0-9, '_', '-', '.'"
        ))
    }
}
