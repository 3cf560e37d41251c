//! Shell words, as a `words` rule sees them.
//!
//! Whitespace separates words; `;`, `&`, `|`, `(`, `)`, a backquote and a
//! line break separate commands (a rule's words must stand in one
//! command, so `echo rm; -rf /` is not `rm -rf /`). Quotes are kept as
//! typed: this is a guard against mistakes, not a shell parser (a shell
//! can always build a command no rule sees; `docs/command-policy.md`).

/// One piece of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A word.
    Word(&'a str),
    /// Between two commands.
    Break,
}

/// Whether `c` ends one command and starts another.
fn separates_commands(c: char) -> bool {
    matches!(c, ';' | '&' | '|' | '(' | ')' | '`' | '\n' | '\r')
}

/// The words and command breaks of `text`, in order.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let breaks = separates_commands(c);
        if breaks || c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(Piece::Word(&text[s..i]));
            }
            if breaks && out.last() != Some(&Piece::Break) {
                out.push(Piece::Break);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Piece::Word(&text[s..]));
    }
    out
}

/// Whether the words of `phrase` (already split) stand one after the other
/// in one command of `pieces`.
pub fn contains(pieces: &[Piece<'_>], phrase: &[String]) -> bool {
    if phrase.is_empty() || phrase.len() > pieces.len() {
        return false;
    }
    pieces.windows(phrase.len()).any(|window| {
        window
            .iter()
            .zip(phrase)
            .all(|(piece, word)| matches!(piece, Piece::Word(w) if w == word))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn matches(command: &str, words: &str) -> bool {
        contains(&pieces(command), &phrase(words))
    }

    #[test]
    fn whole_words_anywhere_in_one_command() {
        assert!(matches("rm -rf /", "rm -rf /"));
        assert!(matches("sudo  rm\t-rf   /", "rm -rf /"));
        assert!(matches("cd /tmp && rm -rf /", "rm -rf /"));
        assert!(matches("rm -rf /;ls", "rm -rf /"));
        assert!(!matches("rm -rf /tmp/x", "rm -rf /"));
        assert!(!matches("echo rm; -rf /", "rm -rf /"));
        assert!(!matches("shutdownx", "shutdown"));
        assert!(matches("echo a | sudo shutdown -h now", "shutdown"));
        assert!(matches("(reboot)", "reboot"));
    }

    #[test]
    fn a_line_break_ends_a_command() {
        assert!(!matches("rm -rf\n/", "rm -rf /"));
        assert!(matches("ls\nrm -rf /\n", "rm -rf /"));
    }

    #[test]
    fn empty_phrases_and_commands_match_nothing() {
        assert!(!matches("", "rm"));
        assert!(!matches("rm", ""));
        assert_eq!(pieces(" ; ;; "), vec![Piece::Break]);
    }
}
