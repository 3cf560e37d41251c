//! [`Visible`]: which stored runs a reader may see. A leaf: the record
//! types that are queried by it import it.

/// Which runs a reader may see (WAVE2: reads are filtered by the same
/// server scope as use): every run, or only runs whose every server is
/// among these names. A run that acts on no server (a workflow of pauses)
/// is visible to every reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// Every run (administrators, and accounts that may use every server).
    All,
    /// Runs on these servers only.
    OnlyOn(Vec<String>),
}

impl Visible {
    /// Whether a run on `servers` may be shown.
    pub fn allows<S: AsRef<str>>(&self, servers: &[S]) -> bool {
        match self {
            Visible::All => true,
            Visible::OnlyOn(mine) => servers.iter().all(|s| mine.iter().any(|m| m == s.as_ref())),
        }
    }

    /// The allowed names as a JSON array, `None` for every run: what a SQL
    /// filter binds.
    pub fn as_json(&self) -> Option<String> {
        match self {
            Visible::All => None,
            Visible::OnlyOn(names) => Some(serde_json::to_string(names).unwrap_or_else(|_| "[]".into())),
        }
    }
}
