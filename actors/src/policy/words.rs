//! A command line as the rules see it: its commands, each with its shell
//! words, quotes taken off.
//!
//! `;`, `&`, `|`, `(`, `)`, a backquote and a line break outside quotes end
//! one command and start the next (`&&` and `||` too), so a rule's words
//! must stand in one command: `echo rm; -rf /` is not `rm -rf /`. Quotes
//! and backslashes are taken off as a POSIX shell would (`'...'` keeps
//! everything, `"..."` and a bare backslash escape the next character), so
//! `rm -rf '/'` (a quoted workflow parameter) and `r''m -rf /` are
//! `rm -rf /`. This is a guard against mistakes, not a shell parser: a
//! shell can always build a command no rule sees (`$(printf rm)`, a
//! variable, a script file; `docs/command-policy.md`).

/// One command of a command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    /// Its text, quotes taken off, words joined by one space.
    pub text: String,
    /// Its words.
    pub words: Vec<String>,
}

/// Whether `c` ends one command and starts another (outside quotes).
fn separates_commands(c: char) -> bool {
    matches!(c, ';' | '&' | '|' | '(' | ')' | '`' | '\n' | '\r')
}

/// The commands of `text`, in order, empty ones left out.
pub fn commands(text: &str) -> Vec<Command> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut out = Vec::new();
    let mut current = Command::default();
    let mut word = String::new();
    // a word was started even if it is empty so far (`''`)
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = text.chars();
    let end_word = |current: &mut Command, word: &mut String, in_word: &mut bool| {
        if *in_word {
            current.words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    let end_command = |out: &mut Vec<Command>, current: &mut Command| {
        if !current.words.is_empty() {
            let mut done = std::mem::take(current);
            done.text = done.words.join(" ");
            out.push(done);
        }
    };
    while let Some(c) = chars.next() {
        match quote {
            Quote::Single => {
                if c == '\'' {
                    quote = Quote::None;
                } else {
                    word.push(c);
                }
            }
            Quote::Double => match c {
                '"' => quote = Quote::None,
                '\\' => {
                    if let Some(next) = chars.next() {
                        word.push(next);
                    }
                }
                c => word.push(c),
            },
            Quote::None => match c {
                '\'' => {
                    quote = Quote::Single;
                    in_word = true;
                }
                '"' => {
                    quote = Quote::Double;
                    in_word = true;
                }
                '\\' => match chars.next() {
                    // a line continued: the words go on
                    Some('\n') | None => {}
                    Some(next) => {
                        word.push(next);
                        in_word = true;
                    }
                },
                c if separates_commands(c) => {
                    end_word(&mut current, &mut word, &mut in_word);
                    end_command(&mut out, &mut current);
                }
                c if c.is_whitespace() => end_word(&mut current, &mut word, &mut in_word),
                c => {
                    word.push(c);
                    in_word = true;
                }
            },
        }
    }
    end_word(&mut current, &mut word, &mut in_word);
    end_command(&mut out, &mut current);
    out
}

/// Whether the words of `phrase` (already split) stand one after the other
/// in `words`.
pub fn contains(words: &[String], phrase: &[String]) -> bool {
    if phrase.is_empty() || phrase.len() > words.len() {
        return false;
    }
    words.windows(phrase.len()).any(|window| window == phrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn matches(command: &str, words: &str) -> bool {
        commands(command)
            .iter()
            .any(|c| contains(&c.words, &phrase(words)))
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
    fn quotes_and_backslashes_come_off_as_a_shell_takes_them() {
        // a workflow parameter rendered quoted
        assert!(matches("rm -rf '/'", "rm -rf /"));
        assert!(matches("systemctl 'restart' 'nginx'", "systemctl restart"));
        assert!(matches("r''m -rf \"/\"", "rm -rf /"));
        assert!(matches("\\rm -rf /", "rm -rf /"));
        // a separator inside quotes separates nothing
        assert_eq!(commands("echo 'a; b' c").len(), 1);
        assert_eq!(commands("echo 'a; b' c")[0].words, ["echo", "a; b", "c"]);
        // an unterminated quote keeps the rest as one word, without panic
        assert_eq!(commands("echo 'abc")[0].words, ["echo", "abc"]);
        assert_eq!(commands("echo \"a\\")[0].words, ["echo", "a"]);
    }

    #[test]
    fn a_line_break_ends_a_command_unless_it_is_escaped() {
        assert!(!matches("rm -rf\n/", "rm -rf /"));
        assert!(matches("ls\nrm -rf /\n", "rm -rf /"));
        assert!(matches("sudo systemctl \\\n restart nginx", "systemctl restart"));
    }

    #[test]
    fn commands_have_their_words_joined_by_one_space() {
        let cs = commands("  cd /var/log &&  grep -c   error syslog | sort ");
        let texts: Vec<&str> = cs.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["cd /var/log", "grep -c error syslog", "sort"]);
    }

    #[test]
    fn empty_phrases_and_commands_match_nothing() {
        assert!(!matches("", "rm"));
        assert!(!matches("rm", ""));
        assert!(commands(" ; ;; ").is_empty());
    }
}
