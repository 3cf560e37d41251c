//! Loading `.env`: the seed's way of giving settings (and the seed servers'
//! password) to the daemon.
//!
//! We read the file ourselves instead of with dotenvy for two reasons that
//! touch secrets: dotenvy's parse error quotes the whole line (so
//! `HIWARE_PW=Pa\ss` printed the password), and it substitutes `$NAME` in
//! unquoted and double-quoted values (so a password `Pa$word` silently
//! became `Pa`). Here an error names the file, the line number and the
//! variable, never the value, and `$` is always taken literally.
//!
//! Otherwise the syntax is dotenvy's, so existing files keep their meaning:
//! - blank lines and lines starting with `#` are skipped; `export ` before
//!   a name is allowed;
//! - `NAME=value`, blanks around `=` allowed; a name is letters, digits,
//!   `_` and `.`;
//! - unquoted values end at the first blank, after which only a
//!   `# comment` may follow;
//! - `'single'` quotes keep everything literally; in `"double"` quotes and
//!   unquoted, a backslash escapes `\\`, `\'`, `\"`, `\$`, a blank, or makes
//!   `\n` a newline; any other escape is an error;
//! - quoted and unquoted parts may follow each other (`a'b c'"d"` is
//!   `ab cd`); a quote must close on its own line.
//!
//! Variables already in the environment win over the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What [`load_dotenv`] did at start: the file it read and the variables
/// it set (those the environment did not already have). Written once,
/// before any thread starts; read by reloads ([`reread`]).
static LOADED: OnceLock<(Option<PathBuf>, BTreeSet<String>)> = OnceLock::new();

/// Why a `.env` line was refused. Its `Display` names the file, the line
/// and (when it could be read) the variable, and never any value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: usize,
    /// The variable the line sets, if its name could be read.
    pub name: Option<String>,
    /// What is wrong, in words that quote nothing from the line.
    pub reason: &'static str,
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(name) = &self.name {
            write!(f, "{name}: ")?;
        }
        f.write_str(self.reason)
    }
}

impl std::error::Error for DotenvError {}

/// Finds `.env` in the working directory or the nearest ancestor that has
/// one (as dotenvy did) and sets each of its variables that the
/// environment does not already have. No file is not an error.
///
/// Call it before any thread starts: it changes the process environment.
pub fn load_dotenv() -> Result<Option<PathBuf>, DotenvError> {
    let Some(file) = find() else {
        let _ = LOADED.set((None, BTreeSet::new()));
        return Ok(None);
    };
    let mut set = BTreeSet::new();
    for (name, value) in read(&file)? {
        if std::env::var_os(&name).is_none() {
            // safe in edition 2021: main calls this before starting threads
            std::env::set_var(&name, value);
            set.insert(name);
        }
    }
    let _ = LOADED.set((Some(file.clone()), set));
    Ok(Some(file))
}

/// `.env` in the working directory or its nearest ancestor.
fn find() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors().map(|d| d.join(".env")).find(|f| f.is_file())
}

/// The variables as a reload sees them: the process environment as the
/// daemon started with it (which cannot change), over `.env` read again
/// now. A variable that came from `.env` at start takes the file's value
/// now, or none when the file no longer sets it; one the environment gave
/// keeps winning over the file, as at start. The file read is the one
/// found at start (or, when there was none, the one found now).
#[derive(Clone, Default)]
pub struct Reread {
    from_file: BTreeMap<String, String>,
    started_from_file: BTreeSet<String>,
    /// Values that win over both (see [`Reread::with_overrides`]).
    overrides: BTreeMap<String, Option<String>>,
}

impl Reread {
    /// The same, except that each of `values` reads as given: a reload
    /// keeps the old value of a variable whose change waits for a
    /// restart, so the next reload reports it again.
    pub fn with_overrides<'a>(
        mut self,
        values: impl IntoIterator<Item = (&'a str, Option<String>)>,
    ) -> Reread {
        self.overrides
            .extend(values.into_iter().map(|(name, value)| (name.to_owned(), value)));
        self
    }

    /// The value of `name` as a reload sees it.
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(value) = self.overrides.get(name) {
            return value.clone();
        }
        if self.started_from_file.contains(name) {
            return self.from_file.get(name).cloned();
        }
        std::env::var(name)
            .ok()
            .or_else(|| self.from_file.get(name).cloned())
    }
}

/// Reads `.env` again (see [`Reread`]).
pub fn reread() -> Result<Reread, DotenvError> {
    let (file, started_from_file) = match LOADED.get() {
        Some((file, set)) => (file.clone().or_else(find), set.clone()),
        None => (find(), BTreeSet::new()),
    };
    let from_file = match file {
        Some(file) if file.is_file() => read(&file)?.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    Ok(Reread {
        from_file,
        started_from_file,
        overrides: BTreeMap::new(),
    })
}

/// The variables of the file `file`.
fn read(file: &Path) -> Result<Vec<(String, String)>, DotenvError> {
    let file = file.to_path_buf();
    let text = std::fs::read(&file).map_err(|_| DotenvError {
        file: file.clone(),
        line: 0,
        name: None,
        reason: "cannot be read",
    })?;
    let text = String::from_utf8(text).map_err(|_| DotenvError {
        file: file.clone(),
        line: 0,
        name: None,
        reason: "is not UTF-8",
    })?;
    parse(&text, &file)
}

/// The variables of a `.env` text, in file order. `file` only names the
/// file in errors.
pub fn parse(text: &str, file: &Path) -> Result<Vec<(String, String)>, DotenvError> {
    let mut vars = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let error = |name: Option<&str>, reason| DotenvError {
            file: file.to_path_buf(),
            line: index + 1,
            name: name.map(str::to_owned),
            reason,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((name, value)) = line.split_once('=') else {
            return Err(error(None, "not a NAME=value line"));
        };
        let name = name.trim_end();
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !name_ok {
            return Err(error(None, "the name before '=' is not a variable name"));
        }
        let value = parse_value(value.trim_start()).map_err(|reason| error(Some(name), reason))?;
        vars.push((name.to_owned(), value));
    }
    Ok(vars)
}

/// The value after `=`; the error says what is wrong without quoting it.
fn parse_value(input: &str) -> Result<String, &'static str> {
    // the environment cannot hold a NUL, and setting one panics with the
    // value in the message
    if input.contains('\0') {
        return Err("a NUL character");
    }
    #[derive(PartialEq)]
    enum In {
        Bare,
        Single,
        Double,
    }
    let mut out = String::new();
    let mut state = In::Bare;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match (&state, c) {
            (In::Single, '\'') | (In::Double, '"') => state = In::Bare,
            (In::Single, c) => out.push(c),
            (In::Bare, '\'') => state = In::Single,
            (In::Bare, '"') => state = In::Double,
            (In::Bare | In::Double, '\\') => match chars.next() {
                Some(e @ ('\\' | '\'' | '"' | '$' | ' ')) => out.push(e),
                Some('n') => out.push('\n'),
                _ => return Err("a backslash escape other than \\\\ \\' \\\" \\$ \\n or \\<blank>"),
            },
            (In::Bare, ' ' | '\t') => {
                let rest = chars.as_str().trim_start();
                if rest.is_empty() || rest.starts_with('#') {
                    return Ok(out);
                }
                return Err("a blank in an unquoted value (quote the value)");
            }
            (_, c) => out.push(c),
        }
    }
    match state {
        In::Bare => Ok(out),
        In::Single => Err("a single quote that is not closed on its line"),
        In::Double => Err("a double quote that is not closed on its line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reread_takes_the_files_values_now_for_what_came_from_it_and_the_environment_wins_over_the_rest() {
        let reread = Reread {
            from_file: [
                ("PINKPAGE_FROM_FILE_AT_START".to_owned(), "new".to_owned()),
                ("PATH".to_owned(), "/from/the/file".to_owned()),
                ("PINKPAGE_NEW_IN_FILE".to_owned(), "added".to_owned()),
            ]
            .into(),
            started_from_file: [
                "PINKPAGE_FROM_FILE_AT_START".to_owned(),
                "PINKPAGE_GONE_FROM_FILE".to_owned(),
            ]
            .into(),
            overrides: BTreeMap::new(),
        };
        assert_eq!(reread.get("PINKPAGE_FROM_FILE_AT_START").as_deref(), Some("new"));
        // the file no longer sets it: unset, whatever the environment kept
        // from the start
        assert_eq!(reread.get("PINKPAGE_GONE_FROM_FILE"), None);
        // the process environment gave it: the environment wins, as at start
        assert_eq!(reread.get("PATH"), std::env::var("PATH").ok());
        assert_eq!(reread.get("PINKPAGE_NEW_IN_FILE").as_deref(), Some("added"));
        let kept = reread.with_overrides([("PINKPAGE_NEW_IN_FILE", None)]);
        assert_eq!(kept.get("PINKPAGE_NEW_IN_FILE"), None);
    }

    fn vars(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
        parse(text, Path::new(".env"))
    }

    #[test]
    fn a_nul_in_a_value_is_refused_without_the_value() {
        let err = vars("HIWARE_PW=sec\0ret-nul\n").unwrap_err().to_string();
        assert!(err.contains("HIWARE_PW") && err.contains("NUL"), "{err}");
        assert!(!err.contains("ret-nul"), "{err}");
    }

    fn value(text: &str) -> String {
        let parsed = vars(text).unwrap();
        assert_eq!(parsed.len(), 1, "{parsed:?}");
        parsed[0].1.clone()
    }

    #[test]
    fn a_malformed_secret_line_is_named_by_line_and_variable_never_by_value() {
        let secret = "Pa\\ss-7f3e";
        let text = format!("# seed\nHIWARE_ID=hiware\nHIWARE_PW={secret}\n");
        let error = vars(&text).unwrap_err();
        let shown = error.to_string();
        assert!(shown.starts_with(".env:3: HIWARE_PW: "), "{shown}");
        assert!(!shown.contains("Pa") && !shown.contains("7f3e"), "{shown}");
        assert!(!format!("{error:?}").contains("7f3e"), "{error:?}");
    }

    #[test]
    fn every_kind_of_malformed_value_hides_the_value() {
        for line in [
            "PW=\"open-secret-1",
            "PW='open-secret-1",
            "PW=open secret-1",
            "PW=open\\qsecret-1",
        ] {
            let shown = vars(line).unwrap_err().to_string();
            assert!(shown.starts_with(".env:1: PW: "), "{line}: {shown}");
            assert!(!shown.contains("secret-1"), "{line}: {shown}");
        }
        // without a readable name, nothing of the line is shown at all
        for line in ["open-secret-1", "BAD NAME=open-secret-1"] {
            let shown = vars(line).unwrap_err().to_string();
            assert!(!shown.contains("secret-1") && !shown.contains("BAD"), "{shown}");
        }
    }

    #[test]
    fn a_dollar_is_taken_literally_in_every_form() {
        std::env::set_var("PINKPAGE_DOTENV_TEST_WORD", "substituted");
        assert_eq!(
            value("PW=Pa$PINKPAGE_DOTENV_TEST_WORD"),
            "Pa$PINKPAGE_DOTENV_TEST_WORD"
        );
        assert_eq!(
            value("PW=\"a${PINKPAGE_DOTENV_TEST_WORD}b\""),
            "a${PINKPAGE_DOTENV_TEST_WORD}b"
        );
        assert_eq!(value("PW='$x'"), "$x");
        assert_eq!(value("PW=\\$x"), "$x");
        // and an earlier variable of the file is not substituted either
        let parsed = vars("A=1\nB=$A").unwrap();
        assert_eq!(parsed[1], ("B".into(), "$A".into()));
    }

    #[test]
    fn quotes_escapes_comments_and_export_read_as_dotenvy_read_them() {
        assert_eq!(value("export  PW = plain # trailing comment"), "plain");
        assert_eq!(value("PW=a#b"), "a#b");
        assert_eq!(value("PW='a b \\n'"), "a b \\n");
        assert_eq!(value("PW=\"a \\\"b\\\" \\n\""), "a \"b\" \n");
        assert_eq!(value("PW=a'b c'\"d\""), "ab cd");
        assert_eq!(value("PW=back\\\\slash\\ blank"), "back\\slash blank");
        assert_eq!(value("PW="), "");
        assert_eq!(value("DOTTED.NAME=x"), "x");
        assert_eq!(vars("\n# only comments\n   \n").unwrap(), vec![]);
    }

    #[test]
    fn the_shipped_example_parses() {
        let vars = vars(include_str!("../../.env.example")).unwrap();
        assert!(vars.iter().any(|(name, _)| name == "HIWARE_PW"), "{vars:?}");
    }
}
