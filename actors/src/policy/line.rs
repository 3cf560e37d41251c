//! The line an operator types at an interactive prompt.
//!
//! A [`LineGuard`] sits on a shell's input. Every keystroke passes through
//! at once (echo is never held back); it keeps its own copy of the line
//! typed since the last Enter, and on Enter asks its judge. A refused line
//! does not get its Enter: the shell is sent [`LINE_KILL`] (Ctrl-E, to
//! the end of the line, then Ctrl-U, the line kill of readline and of the
//! terminal driver alike) and then an Enter on the now empty line, so the
//! shell prints its next prompt and the line never runs.
//!
//! What it sees is what was typed, not what the shell will run: history
//! (arrow keys), Tab completion, aliases and pasted control sequences can
//! all build a line it does not see. It is a guard against mistakes, not a
//! security boundary (`docs/command-policy.md`).

use std::sync::Arc;

use crate::error::AppError;

/// The verdict on one typed line: `None` when it may run. Made by the
/// daemon for one shell (its server, its owner's role, the rules).
#[derive(Clone)]
pub struct LineJudge(Arc<JudgeFn>);

/// What a [`LineJudge`] calls.
type JudgeFn = dyn Fn(&str) -> Option<AppError> + Send + Sync;

impl LineJudge {
    /// A judge asking `f` of every line.
    pub fn new(f: impl Fn(&str) -> Option<AppError> + Send + Sync + 'static) -> LineJudge {
        LineJudge(Arc::new(f))
    }
}

impl std::fmt::Debug for LineJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineJudge")
    }
}

/// Sent instead of the Enter of a refused line, before an Enter on the
/// emptied line: to the end of the line (Ctrl-E), then kill it (Ctrl-U).
pub const LINE_KILL: &str = "\u{5}\u{15}";

/// The longest line kept; keystrokes beyond it are passed on but not
/// tracked (memory stays bounded whatever a client sends).
pub const MAX_LINE: usize = 16 * 1024;

/// Where the guard stands in an escape sequence (arrow keys, function
/// keys, bracketed paste markers): such keys are passed on, not typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// After `ESC [`: parameters until a final byte.
    Csi,
    /// After `ESC O`: one more byte.
    Ss3,
}

/// What to send the shell for some input, and the refusal of a line in it.
#[derive(Debug, Default)]
pub struct Passed {
    /// The input as the shell gets it (a refused line's Enter replaced).
    pub write: String,
    /// Why a line in it did not run (the first, if several did not).
    pub refused: Option<AppError>,
}

/// Tracks the typed line of one interactive shell. Owned by the shell's
/// actor, which passes every piece of input through it in order.
pub struct LineGuard {
    line: String,
    escape: Escape,
    judge: LineJudge,
}

impl std::fmt::Debug for LineGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineGuard")
            .field("line_len", &self.line.len())
            .finish()
    }
}

impl LineGuard {
    /// A guard asking `judge` of every line.
    pub fn new(judge: LineJudge) -> LineGuard {
        LineGuard {
            line: String::new(),
            escape: Escape::None,
            judge,
        }
    }

    /// Passes `input` on: everything as it came, but for the Enter of a
    /// refused line.
    pub fn pass(&mut self, input: &str) -> Passed {
        let mut out = Passed {
            write: String::with_capacity(input.len()),
            refused: None,
        };
        for c in input.chars() {
            if self.escape != Escape::None {
                self.escape = match (self.escape, c) {
                    (Escape::Start, '[') => Escape::Csi,
                    (Escape::Start, 'O') => Escape::Ss3,
                    (Escape::Csi, '\u{20}'..='\u{3f}') => Escape::Csi,
                    _ => Escape::None,
                };
                out.write.push(c);
                continue;
            }
            match c {
                '\r' | '\n' => {
                    let line = std::mem::take(&mut self.line);
                    match (self.judge.0)(line.trim()) {
                        Some(refusal) if !line.trim().is_empty() => {
                            out.write.push_str(LINE_KILL);
                            out.write.push('\r');
                            out.refused.get_or_insert(refusal);
                        }
                        _ => out.write.push(c),
                    }
                    continue;
                }
                '\u{1b}' => self.escape = Escape::Start,
                // Backspace (DEL or ^H)
                '\u{7f}' | '\u{8}' => {
                    self.line.pop();
                }
                // Ctrl-U and Ctrl-C: the line is gone
                '\u{15}' | '\u{3}' => self.line.clear(),
                // Ctrl-W: the last word
                '\u{17}' => {
                    let kept = self
                        .line
                        .trim_end()
                        .rfind(char::is_whitespace)
                        .map_or(0, |i| i + 1);
                    self.line.truncate(kept);
                }
                '\t' => self.push(' '),
                c if c.is_control() => {}
                c => self.push(c),
            }
            out.write.push(c);
        }
        out
    }

    fn push(&mut self, c: char) {
        if self.line.len() + c.len_utf8() <= MAX_LINE {
            self.line.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn guard() -> LineGuard {
        LineGuard::new(LineJudge::new(|line: &str| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .windows(3)
                .any(|w| w == ["rm", "-rf", "/"])
                .then(|| AppError::with_detail(ErrorCode::CommandDenied, "no"))
        }))
    }

    #[test]
    fn allowed_lines_pass_byte_for_byte() {
        let mut g = guard();
        for input in ["ls -l\r", "e", "cho hi", "\r", "\u{1b}[A\r", "\r\n"] {
            let passed = g.pass(input);
            assert_eq!(passed.write, input);
            assert!(passed.refused.is_none());
        }
    }

    #[test]
    fn a_refused_enter_becomes_a_line_kill_and_an_empty_enter() {
        let mut g = guard();
        // typed a key at a time: every key but the Enter goes through
        for c in "rm -rf /".chars() {
            assert_eq!(g.pass(&c.to_string()).write, c.to_string());
        }
        let passed = g.pass("\r");
        assert_eq!(passed.write, format!("{LINE_KILL}\r"));
        assert_eq!(passed.refused.unwrap().code, ErrorCode::CommandDenied);
        // the next line starts clean
        let passed = g.pass("ls\r");
        assert_eq!(passed.write, "ls\r");
        assert!(passed.refused.is_none());
    }

    #[test]
    fn a_paste_of_several_lines_loses_only_the_refused_enter() {
        let mut g = guard();
        let passed = g.pass("echo a\nsudo rm -rf /\necho b\n");
        assert_eq!(
            passed.write,
            format!("echo a\nsudo rm -rf /{LINE_KILL}\recho b\n")
        );
        assert!(passed.refused.is_some());
    }

    #[test]
    fn editing_keys_change_the_tracked_line() {
        let mut g = guard();
        // typed, then erased with backspace: "rm -rf /tmp" is fine
        assert!(g.pass("rm -rf /x\u{7f}tmp\r").refused.is_none());
        // Ctrl-U then a fresh dangerous line
        assert!(g.pass("ls\u{15}rm -rf /\r").refused.is_some());
        // Ctrl-W removes the last word: "rm -rf " + "/" is refused
        assert!(g.pass("rm -rf /tmp\u{17}/\r").refused.is_some());
        // Ctrl-C drops what was typed
        assert!(g.pass("rm -rf /\u{3}\r").refused.is_none());
    }

    #[test]
    fn escape_sequences_are_passed_on_but_not_typed() {
        let mut g = guard();
        // an arrow key between the words does not add letters
        assert!(g.pass("rm -rf \u{1b}[D\u{1b}[C/\r").refused.is_some());
        // bracketed paste markers around a pasted line
        assert!(g.pass("\u{1b}[200~rm -rf /\u{1b}[201~\r").refused.is_some());
        // an SS3 key (F1) in a line
        assert!(g.pass("\u{1b}OPls\r").refused.is_none());
    }

    #[test]
    fn an_empty_line_is_never_refused_and_long_lines_stay_bounded() {
        let mut g = LineGuard::new(LineJudge::new(|_| Some(AppError::new(ErrorCode::CommandDenied))));
        assert_eq!(g.pass("\r").write, "\r");
        let long = "x".repeat(MAX_LINE * 2);
        assert_eq!(g.pass(&long).write.len(), long.len());
        assert!(g.line.len() <= MAX_LINE);
    }
}
