//! The DIFF engine's pure part: classify bytes as text or binary, compare
//! two files (unified diff or SHA-256), compare two directory listings.
//!
//! (Over 450 lines with its tests: the code is under 300; the tests pin each
//! classification and tree rule beside it.)
//!
//! Nothing here does I/O; [`crate::diff::remote`] fetches the bytes and the
//! listings over SFTP and SSH and calls in. Diffing up to
//! `PINKPAGE_DIFF_MAX_BYTES` (10 MiB) of text is CPU work of up to seconds:
//! callers run [`diff_bytes`] on a blocking thread, never on the actix
//! event loop.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use similar::TextDiff;

use crate::files::sftp::{Entry, EntryKind};

/// How much of the start of a file is searched for a NUL byte.
pub const BINARY_SNIFF_BYTES: usize = 8 * 1024;
/// Lines of context around each change when the request names none.
pub const DEFAULT_CONTEXT: usize = 3;
/// The diff algorithm gives up looking for the smallest diff after this
/// and settles for a correct, possibly longer one, so a pathological pair
/// of files cannot hold a blocking thread for minutes.
pub const DIFF_DEADLINE: Duration = Duration::from_secs(5);

/// Which of the two things compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The first (`left`, `---`) one.
    Left,
    /// The second (`right`, `+++`) one.
    Right,
}

impl Side {
    /// `left` or `right`, as errors name the side.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// One side of a file comparison: its bytes and how to read them.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The unified diff's file label (`server:path`).
    pub label: &'a str,
    /// The whole file (or command output).
    pub bytes: &'a [u8],
    /// The server's encoding.
    pub encoding: &'static encoding_rs::Encoding,
}

/// What `diff_files` (and the output part of `diff_command`) answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    /// Same content: the bytes are equal, or (text only) they decode to the
    /// same text under each server's encoding.
    pub identical: bool,
    /// The unified diff, left to right, with `server:path` labels; empty
    /// when identical or binary.
    pub unified_diff: String,
    /// SHA-256 of the left bytes, lowercase hex.
    pub left_sha256: String,
    /// SHA-256 of the right bytes, lowercase hex.
    pub right_sha256: String,
    /// Left size in bytes.
    pub left_size: u64,
    /// Right size in bytes.
    pub right_size: u64,
    /// At least one side is binary (a NUL in its first 8 KiB, or bytes its
    /// server's encoding cannot decode): compared by SHA-256 only.
    pub binary: bool,
}

/// SHA-256 of `bytes`, lowercase hex (the one helper all callers share).
pub use crate::files::digest::sha256_hex;

/// `bytes` decoded with `encoding`, or `None` when they are binary: a NUL
/// in the first [`BINARY_SNIFF_BYTES`], or a sequence the encoding cannot
/// decode (a text diff of replacement characters would hide the change).
pub fn decode_text(bytes: &[u8], encoding: &'static encoding_rs::Encoding) -> Option<String> {
    let head = &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)];
    if head.contains(&0) {
        return None;
    }
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
}

/// Compares two files: by SHA-256 when either is binary, else by text with
/// a unified diff of `context` lines around each change. CPU-bound: call it
/// from a blocking thread.
pub fn diff_bytes(left: Input<'_>, right: Input<'_>, context: usize) -> FileDiff {
    let left_sha256 = sha256_hex(left.bytes);
    let right_sha256 = sha256_hex(right.bytes);
    let same_bytes = left.bytes == right.bytes;
    let mut result = FileDiff {
        identical: same_bytes,
        unified_diff: String::new(),
        left_sha256,
        right_sha256,
        left_size: left.bytes.len() as u64,
        right_size: right.bytes.len() as u64,
        binary: false,
    };
    let texts = (
        decode_text(left.bytes, left.encoding),
        decode_text(right.bytes, right.encoding),
    );
    let (Some(old), Some(new)) = texts else {
        result.binary = true;
        return result;
    };
    if same_bytes || old == new {
        result.identical = true;
        return result;
    }
    result.unified_diff = unified_diff(&old, &new, left.label, right.label, context);
    result
}

/// The unified diff from `old` to `new` (what `diff -u` prints, including
/// `\ No newline at end of file`), which `patch` applies to `old`.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str, context: usize) -> String {
    let diff = TextDiff::configure().timeout(DIFF_DEADLINE).diff_lines(old, new);
    diff.unified_diff()
        .context_radius(context)
        .header(old_label, new_label)
        .to_string()
}

/// What `diff_dirs` compares files by, besides their type and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareBy {
    /// Type and size only.
    #[default]
    Size,
    /// Type, size and modification time.
    Mtime,
    /// Type, size and, when the sizes agree, SHA-256 of the contents.
    Sha256,
}

/// One side of an entry found on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// File, directory, symlink or other.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Last modification, seconds since the Unix epoch.
    pub mtime: Option<u32>,
    /// SHA-256 of the contents, when `compare` is `sha256` and it was needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl From<&Entry> for EntryInfo {
    fn from(e: &Entry) -> Self {
        EntryInfo {
            kind: e.kind,
            size: e.size,
            mode: e.mode,
            mtime: e.mtime,
            sha256: None,
        }
    }
}

/// An entry on both sides that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Differing {
    /// Path relative to both roots (`sub/app.conf`).
    pub path: String,
    /// What is on the left.
    pub left: EntryInfo,
    /// What is on the right.
    pub right: EntryInfo,
    /// Why it differs: `type`, `size`, `mtime`, `sha256`.
    pub reasons: Vec<&'static str>,
}

/// What `diff_dirs` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DirDiff {
    /// Paths only on the left (a directory found only there stands for
    /// everything in it), sorted.
    pub only_left: Vec<String>,
    /// Paths only on the right, likewise.
    pub only_right: Vec<String>,
    /// Entries on both sides that differ, sorted by path.
    pub differing: Vec<Differing>,
    /// How many entries are on both sides and the same.
    pub identical_count: u64,
}

/// A walked tree: relative path to what is there.
pub type Tree = BTreeMap<String, Entry>;

/// Paths in `a` missing from `b`, without those under a directory that is
/// itself missing (it is reported instead).
fn only_in(a: &Tree, b: &Tree) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in a.keys().filter(|p| !b.contains_key(*p)) {
        // BTreeMap order puts "d" before "d/x"; but "d-1" sorts between
        // them, so check the ancestors rather than the last one pushed
        let covered = path
            .match_indices('/')
            .any(|(i, _)| !b.contains_key(&path[..i]) && a.contains_key(&path[..i]));
        if !covered {
            out.push(path.clone());
        }
    }
    out
}

/// The reasons two entries found at the same path differ, by type, size
/// and (files only) mtime; content hashes are compared by the caller.
pub fn entry_reasons(left: &Entry, right: &Entry, compare: CompareBy) -> Vec<&'static str> {
    if left.kind != right.kind {
        return vec!["type"];
    }
    let mut reasons = Vec::new();
    // a directory's size and mtime follow its entries, which are compared
    // one by one: comparing them too would only add noise
    if left.kind == EntryKind::Dir {
        return reasons;
    }
    if left.size != right.size {
        reasons.push("size");
    }
    if compare == CompareBy::Mtime && left.kind == EntryKind::File && left.mtime != right.mtime {
        reasons.push("mtime");
    }
    reasons
}

/// Whether a pair needs its contents hashed to be compared.
pub fn needs_hash(left: &Entry, right: &Entry, compare: CompareBy) -> bool {
    compare == CompareBy::Sha256
        && left.kind == EntryKind::File
        && right.kind == EntryKind::File
        && left.size == right.size
}

/// Compares two walked trees. `hashes` has the SHA-256 of both sides of
/// every path [`needs_hash`] chose (missing ones are not compared).
pub fn compare_trees(
    left: &Tree,
    right: &Tree,
    compare: CompareBy,
    hashes: &BTreeMap<String, (String, String)>,
) -> DirDiff {
    let mut out = DirDiff {
        only_left: only_in(left, right),
        only_right: only_in(right, left),
        ..DirDiff::default()
    };
    for (path, l) in left {
        let Some(r) = right.get(path) else { continue };
        let mut reasons = entry_reasons(l, r, compare);
        let (mut li, mut ri) = (EntryInfo::from(l), EntryInfo::from(r));
        if let Some((lh, rh)) = hashes.get(path) {
            if lh != rh {
                reasons.push("sha256");
            }
            li.sha256 = Some(lh.clone());
            ri.sha256 = Some(rh.clone());
        }
        if reasons.is_empty() {
            out.identical_count += 1;
        } else {
            out.differing.push(Differing {
                path: path.clone(),
                left: li,
                right: ri,
                reasons,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(label: &'a str, bytes: &'a [u8]) -> Input<'a> {
        Input {
            label,
            bytes,
            encoding: encoding_rs::UTF_8,
        }
    }

    #[test]
    fn equal_files_are_identical_with_an_empty_diff_and_equal_hashes() {
        let r = diff_bytes(input("a:x", b"one\ntwo\n"), input("b:x", b"one\ntwo\n"), 3);
        assert!(r.identical);
        assert!(!r.binary);
        assert_eq!(r.unified_diff, "");
        assert_eq!(r.left_sha256, r.right_sha256);
        assert_eq!(r.left_sha256.len(), 64);
        assert_eq!(r.left_sha256, sha256_hex(b"one\ntwo\n"));
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(r.left_size, 8);
    }

    #[test]
    fn one_changed_line_gives_a_labelled_unified_diff_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n";
        let r = diff_bytes(
            input("mdwap1p:/etc/a", old.as_bytes()),
            input("mypap1d:/etc/a", new.as_bytes()),
            1,
        );
        assert!(!r.identical);
        assert_eq!(
            r.unified_diff,
            "--- mdwap1p:/etc/a\n+++ mypap1d:/etc/a\n@@ -4,3 +4,3 @@\n 4\n-5\n+FIVE\n 6\n"
        );
    }

    #[test]
    fn a_missing_final_newline_is_marked_as_diff_does() {
        let d = unified_diff("a\nb", "a\nc", "l", "r", 3);
        assert!(
            d.contains("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file"),
            "{d}"
        );
    }

    #[test]
    fn a_nul_byte_makes_a_file_binary_and_it_is_compared_by_hash_only() {
        let r = diff_bytes(input("l", b"abc\0def"), input("r", b"abc\0deg"), 3);
        assert!(r.binary);
        assert!(!r.identical);
        assert_eq!(r.unified_diff, "");
        assert_ne!(r.left_sha256, r.right_sha256);
        let same = diff_bytes(input("l", b"\0\x01"), input("r", b"\0\x01"), 3);
        assert!(same.binary && same.identical);
    }

    #[test]
    fn a_nul_past_the_first_8_kib_does_not_make_a_file_binary() {
        let mut bytes = vec![b'a'; BINARY_SNIFF_BYTES];
        bytes.push(0);
        assert!(decode_text(&bytes, encoding_rs::UTF_8).is_some());
        bytes.insert(10, 0);
        assert!(decode_text(&bytes, encoding_rs::UTF_8).is_none());
    }

    #[test]
    fn bytes_the_encoding_cannot_decode_are_binary() {
        assert!(decode_text(b"caf\xe9", encoding_rs::UTF_8).is_none());
        assert!(decode_text("café".as_bytes(), encoding_rs::UTF_8).is_some());
    }

    #[test]
    fn text_is_decoded_with_each_servers_encoding() {
        let (euc, _, _) = encoding_rs::EUC_KR.encode("안녕하세요\n");
        let left = Input {
            label: "l",
            bytes: &euc,
            encoding: encoding_rs::EUC_KR,
        };
        let same = diff_bytes(left, input("r", "안녕하세요\n".as_bytes()), 3);
        assert!(
            same.identical,
            "the same text in two encodings is the same content"
        );
        assert!(!same.binary);
        assert_ne!(same.left_sha256, same.right_sha256);
        let changed = diff_bytes(left, input("r", "안녕\n".as_bytes()), 3);
        assert!(
            changed.unified_diff.contains("-안녕하세요\n+안녕\n"),
            "{}",
            changed.unified_diff
        );
    }

    fn entry(kind: EntryKind, size: u64, mtime: u32) -> Entry {
        Entry {
            name: String::new(),
            kind,
            size,
            mode: 0o644,
            mtime: Some(mtime),
        }
    }

    fn tree(items: &[(&str, Entry)]) -> Tree {
        items.iter().map(|(p, e)| (p.to_string(), e.clone())).collect()
    }

    #[test]
    fn trees_report_only_left_only_right_and_differing_entries() {
        let f = |size, mtime| entry(EntryKind::File, size, mtime);
        let d = entry(EntryKind::Dir, 4096, 1);
        let left = tree(&[
            ("a", f(1, 1)),
            ("same", f(5, 1)),
            ("sub", d.clone()),
            ("sub/x", f(2, 1)),
            ("gone", d.clone()),
            ("gone/deep", f(1, 1)),
            ("kind", f(1, 1)),
        ]);
        let right = tree(&[
            ("b", f(1, 1)),
            ("same", f(5, 9)),
            ("sub", entry(EntryKind::Dir, 8192, 7)),
            ("sub/x", f(3, 1)),
            ("kind", d.clone()),
        ]);
        let r = compare_trees(&left, &right, CompareBy::Size, &BTreeMap::new());
        assert_eq!(r.only_left, vec!["a", "gone"]);
        assert_eq!(r.only_right, vec!["b"]);
        let diffs: Vec<_> = r
            .differing
            .iter()
            .map(|d| (d.path.as_str(), d.reasons.clone()))
            .collect();
        assert_eq!(diffs, vec![("kind", vec!["type"]), ("sub/x", vec!["size"])]);
        assert_eq!(r.identical_count, 2, "same (mtime ignored) and sub");

        let by_mtime = compare_trees(&left, &right, CompareBy::Mtime, &BTreeMap::new());
        assert!(by_mtime
            .differing
            .iter()
            .any(|d| d.path == "same" && d.reasons == ["mtime"]));
    }

    #[test]
    fn a_sibling_that_sorts_between_a_directory_and_its_entries_is_still_reported() {
        let f = entry(EntryKind::File, 1, 1);
        let d = entry(EntryKind::Dir, 1, 1);
        let left = tree(&[("d", d.clone()), ("d-1", f.clone()), ("d/x", f.clone())]);
        let right = tree(&[]);
        let r = compare_trees(&left, &right, CompareBy::Size, &BTreeMap::new());
        assert_eq!(r.only_left, vec!["d", "d-1"]);
    }

    #[test]
    fn hashes_decide_between_files_of_equal_size() {
        let f = entry(EntryKind::File, 3, 1);
        assert!(needs_hash(&f, &f, CompareBy::Sha256));
        assert!(!needs_hash(&f, &f, CompareBy::Size));
        assert!(!needs_hash(&f, &entry(EntryKind::File, 4, 1), CompareBy::Sha256));
        let t = tree(&[("x", f.clone()), ("y", f.clone())]);
        let hashes = BTreeMap::from([
            ("x".to_owned(), ("aa".to_owned(), "bb".to_owned())),
            ("y".to_owned(), ("cc".to_owned(), "cc".to_owned())),
        ]);
        let r = compare_trees(&t, &t, CompareBy::Sha256, &hashes);
        assert_eq!(r.differing.len(), 1);
        assert_eq!(r.differing[0].reasons, ["sha256"]);
        assert_eq!(r.differing[0].left.sha256.as_deref(), Some("aa"));
        assert_eq!(r.identical_count, 1);
    }
}
