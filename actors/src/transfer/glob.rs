//! The transfer's source: a directory and a pattern for the names in it,
//! matched by the daemon on an SFTP listing (never by a remote shell).
//!
//! Only the last path component may be a pattern (`*`, `?`, `[...]`,
//! `[!...]`, as in a shell, via `glob::Pattern`); earlier components are
//! taken literally. A pattern does not match names starting with `.`
//! unless it starts with `.` itself, as in a shell, which also keeps our
//! own temporary files (`.<name>.pinkpage-<uuid>.part`) out of a transfer
//! whose source and destination directories are the same. A last component
//! without `*`, `?` or `[` names one file literally.

use glob::{MatchOptions, Pattern};

/// A parsed `source_glob`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceGlob {
    /// The directory listed (`/` for a file at the root).
    pub dir: String,
    /// The pattern for names in `dir`.
    pub pattern: String,
}

impl SourceGlob {
    /// Splits an absolute path at its last `/`.
    pub fn parse(glob: &str) -> Result<SourceGlob, String> {
        let Some((dir, pattern)) = glob.rsplit_once('/') else {
            return Err(format!("'{glob}' is not an absolute path"));
        };
        if !glob.starts_with('/') {
            return Err(format!("'{glob}' is not an absolute path"));
        }
        if pattern.is_empty() {
            return Err(format!("'{glob}' names a directory, not files"));
        }
        Ok(SourceGlob {
            dir: if dir.is_empty() {
                "/".to_owned()
            } else {
                dir.to_owned()
            },
            pattern: pattern.to_owned(),
        })
    }

    /// The full path of `name` in the directory.
    pub fn path_of(&self, name: &str) -> String {
        join(&self.dir, name)
    }
}

/// `dir/name` without a doubled `/`.
pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Matches file names against the pattern of a [`SourceGlob`].
#[derive(Debug)]
pub enum Matcher {
    /// No metacharacter: the one name, compared literally.
    Literal(String),
    /// A shell-style pattern.
    Pattern(Pattern),
}

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

impl Matcher {
    /// Compiles `pattern`; an invalid one (`[z-a]`, an unclosed `[`) is an
    /// error naming it.
    pub fn new(pattern: &str) -> Result<Matcher, String> {
        if !pattern.contains(['*', '?', '[']) {
            return Ok(Matcher::Literal(pattern.to_owned()));
        }
        Pattern::new(pattern)
            .map(Matcher::Pattern)
            .map_err(|e| format!("invalid pattern '{pattern}': {}", e.msg))
    }

    /// Whether `name` (one path component) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Literal(l) => l == name,
            Matcher::Pattern(p) => p.matches_with(name, OPTIONS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_splits_into_its_directory_and_its_last_component() {
        let g = SourceGlob::parse("/data/out/*.dat").unwrap();
        assert_eq!(g.dir, "/data/out");
        assert_eq!(g.pattern, "*.dat");
        assert_eq!(g.path_of("a.dat"), "/data/out/a.dat");
        let root = SourceGlob::parse("/x?").unwrap();
        assert_eq!((root.dir.as_str(), root.pattern.as_str()), ("/", "x?"));
        assert_eq!(root.path_of("xy"), "/xy");
    }

    #[test]
    fn relative_paths_and_directories_are_refused() {
        assert!(SourceGlob::parse("data/*.dat").is_err());
        assert!(SourceGlob::parse("*.dat").is_err());
        assert!(SourceGlob::parse("/data/").is_err());
    }

    #[test]
    fn star_question_mark_and_classes_match_like_a_shell() {
        let m = Matcher::new("*.dat").unwrap();
        assert!(m.matches("a.dat"));
        assert!(m.matches("with space; $(rm -rf) 한글.dat"));
        assert!(!m.matches("a.dat.bak"));
        assert!(
            !m.matches(".hidden.dat"),
            "a leading dot must be matched literally"
        );
        let m = Matcher::new("file?.[a-c]").unwrap();
        assert!(m.matches("file1.b"));
        assert!(!m.matches("file12.b"));
        assert!(!m.matches("file1.d"));
        let m = Matcher::new("[!x]*").unwrap();
        assert!(m.matches("abc"));
        assert!(!m.matches("xyz"));
    }

    #[test]
    fn a_name_without_metacharacters_is_compared_literally() {
        let m = Matcher::new("report (final).txt").unwrap();
        assert!(m.matches("report (final).txt"));
        assert!(!m.matches("report (final)Xtxt"));
    }

    #[test]
    fn an_invalid_pattern_is_an_error_naming_it() {
        let e = Matcher::new("[z-").unwrap_err();
        assert!(e.contains("[z-"), "{e}");
    }
}
