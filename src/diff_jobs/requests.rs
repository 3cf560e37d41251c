//! The DIFF request bodies and reply, as they travel: over the WebSocket
//! inside a `{"type": ...}` frame, over REST as the JSON body. Their OpenAPI
//! schemas declare the limits [`super::DiffJob`] enforces, so a request
//! that fits the schema is never refused as malformed.

use pinkpage_actors::diff::remote::CommandDiff;
use pinkpage_actors::diff::{CompareBy, DirDiff, FileDiff};
use serde::{Deserialize, Serialize};

use crate::request::{string_schema, whole_number};
use crate::text::WHITESPACE;

/// A path on a server.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct FileRef {
    /// Configured server name.
    #[schema(min_length = 1)]
    pub server: String,
    /// Remote path (not empty, no NUL); relative paths start at the login
    /// user's home.
    #[schema(min_length = 1, pattern = "^[^\\x00]+$")]
    pub path: String,
}

/// `diff_files`: compare two files.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DiffFilesRequest {
    /// The `---` side.
    pub left: FileRef,
    /// The `+++` side.
    pub right: FileRef,
    /// Lines of context around each change (default 3, at most 10000).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 10000)]
    pub context: Option<usize>,
}

/// `diff_dirs`: compare two directory trees.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DiffDirsRequest {
    /// One directory.
    pub left: FileRef,
    /// The other.
    pub right: FileRef,
    /// Descend into subdirectories (default false: the top level only).
    #[serde(default)]
    pub recursive: bool,
    /// With `recursive`, how many levels (1 = the top level); default all.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 4294967295.0)]
    pub max_depth: Option<u32>,
    /// `size` (default), `mtime` or `sha256`.
    #[serde(default)]
    #[schema(value_type = String, pattern = "^(size|mtime|sha256)$")]
    pub compare: CompareBy,
}

/// `diff_command`: run one command on two servers and compare stdout.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DiffCommandRequest {
    /// The command, run by each server's login shell, without a PTY (not
    /// blank, no NUL).
    #[schema(schema_with = command_schema)]
    pub command: String,
    /// One server.
    #[schema(min_length = 1)]
    pub left_server: String,
    /// The other.
    #[schema(min_length = 1)]
    pub right_server: String,
    /// Stop the commands after this many seconds (default 60, at most 3600).
    #[schema(exclusive_minimum = 0, maximum = 3600)]
    pub timeout_s: Option<f64>,
}

/// `command`: something besides whitespace (as `str::trim` means it), and
/// no NUL, as [`super::DiffJob`] checks.
fn command_schema() -> utoipa::openapi::Object {
    let not_blank = format!("^[^\\u0000]*[^\\u0000{}][^\\u0000]*$", WHITESPACE.class());
    string_schema(
        not_blank,
        None,
        None,
        false,
        "The command, run by each server's login shell, without a PTY (not blank, no NUL).",
    )
}

/// What the DIFF domain answers (REST answers the same objects).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiffReply {
    /// Answer to `diff_files`.
    DiffResult(FileDiff),
    /// Answer to `diff_dirs`.
    DiffDirsResult(DirDiff),
    /// Answer to `diff_command`.
    DiffCommandResult(CommandDiff),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_may_be_spelled_as_whole_floats_but_not_as_fractions() {
        let parse = |v: serde_json::Value| {
            serde_json::from_value::<DiffDirsRequest>(serde_json::json!({
                "left": {"server": "a", "path": "/x"},
                "right": {"server": "b", "path": "/y"},
                "max_depth": v
            }))
        };
        assert_eq!(parse(serde_json::json!(3)).unwrap().max_depth, Some(3));
        assert_eq!(parse(serde_json::json!(3.0)).unwrap().max_depth, Some(3));
        assert_eq!(parse(serde_json::Value::Null).unwrap().max_depth, None);
        for bad in [
            serde_json::json!(3.5),
            serde_json::json!(-1),
            serde_json::json!(4294967296_u64),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_carry_their_type() {
        let v = serde_json::to_value(DiffReply::DiffDirsResult(DirDiff::default())).unwrap();
        assert_eq!(v["type"], "diff_dirs_result");
        assert_eq!(v["identical_count"], 0);
    }
}
