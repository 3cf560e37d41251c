//! What a DIFF WebSocket client may send: the shared request bodies of
//! [`crate::diff_jobs`] inside a `{"type": ...}` frame. Changes with the
//! protocol (docs/diff.md), not with how a diff runs.

use serde::Deserialize;

use crate::diff_jobs::{DiffCommandRequest, DiffDirsRequest, DiffFilesRequest};

/// What a DIFF client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiffRequest {
    /// Compare two files.
    DiffFiles(DiffFilesRequest),
    /// Compare two directories.
    DiffDirs(DiffDirsRequest),
    /// Compare a command's output on two servers.
    DiffCommand(DiffCommandRequest),
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinkpage_actors::diff::CompareBy;

    #[test]
    fn requests_parse_from_the_documented_json() {
        let r: DiffRequest = serde_json::from_value(serde_json::json!({
            "type": "diff_dirs",
            "left": {"server": "a", "path": "/x"},
            "right": {"server": "b", "path": "/y"},
            "recursive": true,
            "compare": "sha256"
        }))
        .unwrap();
        let DiffRequest::DiffDirs(d) = r else {
            panic!("not diff_dirs")
        };
        assert_eq!(d.compare, CompareBy::Sha256);
        assert!(d.recursive);
        assert_eq!(d.max_depth, None);
    }
}
