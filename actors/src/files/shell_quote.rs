//! Quoting for the POSIX shell: how script arguments reach the remote
//! script byte for byte.
//!
//! sshd hands a command line to the user's login shell (`$SHELL -c`), so
//! every word we build must survive one round of shell parsing unchanged.
//! Inside single quotes a POSIX shell treats every byte literally except
//! `'` itself, which cannot be escaped there: it is written as `'\''` (end
//! the quote, an escaped quote, start a new quote). Nothing else (`$`,
//! backquotes, `\`, `!`, newlines, `;`) has any meaning between single
//! quotes. A NUL cannot be passed at all (C strings end there), so callers
//! refuse it.

/// `arg` as one single-quoted POSIX shell word.
pub fn quote(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for ch in arg.chars() {
        if ch == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(ch);
        }
    }
    out.push('\'');
    out
}

/// The command line that runs `program` with `args`, each quoted.
pub fn command_line(program: &str, args: &[String]) -> String {
    let mut line = quote(program);
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    /// What a real `sh` makes of `line`'s arguments to `printf`: each
    /// argument, NUL-terminated.
    fn parsed_by_sh(args: &[String]) -> Vec<String> {
        let quoted: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let script = format!("printf '%s\\0' {}", quoted.join(" "));
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("run sh");
        assert!(out.status.success(), "sh failed on {script:?}: {out:?}");
        let mut words: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8(w.to_vec()).expect("utf-8 back"))
            .collect();
        // the output ends with a NUL, so the split leaves an empty tail
        assert_eq!(words.pop().as_deref(), Some(""));
        words
    }

    #[test]
    fn quotes_are_closed_escaped_and_reopened() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(command_line("/tmp/x", &["a b".into()]), "'/tmp/x' 'a b'");
    }

    #[test]
    fn the_tricky_arguments_survive_a_real_shell() {
        let args: Vec<String> = [
            "a b",
            "it's",
            "$(touch /tmp/nope)",
            ";rm -rf ~",
            "\"quoted\"",
            "",
            "\\",
            "`id`",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(parsed_by_sh(&args), args);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Quoting then parsing with a real `sh` gives back exactly the
        /// arguments, for any strings without NUL. Any Unicode is drawn, and, more often than chance would, the
        /// characters a shell cares about.
        #[test]
        fn quoting_round_trips_through_sh(args in proptest::collection::vec(
            prop_oneof!["[^\\x00]{0,40}", "['\"$`\\\\;&|<>(){}*?!#~= \t\na-z]{0,24}"], 1..6)) {
            prop_assert_eq!(parsed_by_sh(&args), args);
        }
    }
}
