//! The line an operator types at an interactive prompt.
//!
//! A [`LineGuard`] sits on a shell's input. Every keystroke passes through
//! at once (echo is never held back); it keeps its own copy of the line
//! typed since the last Enter, and on Enter asks its judge. A refused
//! line does not get its Enter: the shell is sent [`LINE_KILL`] (Ctrl-C)
//! instead, which discards the whole line in readline, zle and fish, in
//! emacs and vi modes, and in the terminal driver of a shell without line
//! editing, and makes the shell print its next prompt.
//!
//! What it follows: printable text; Backspace, Ctrl-U, Ctrl-W (and
//! Alt-Backspace), Ctrl-C; escape sequences (arrow and function keys,
//! the terminal's own reports) are passed on without adding to the line;
//! a bracketed paste (`ESC [200~` ... `ESC [201~`) is one piece of the
//! line, its line breaks included, judged at the Enter after it; a line
//! continued (a trailing `\`, `|`, `&&`, `||` or an open quote) is judged
//! whole at its last Enter. Enter is `\r`, `\n` or Ctrl-O.
//!
//! What it sees is what was typed, not what the shell will run: history
//! (arrow keys, Ctrl-R), Tab completion, the kill ring, aliases and
//! variables can all build a line it does not see. It is a guard against
//! mistakes, not a security boundary (`docs/command-policy.md`).

use std::sync::Arc;

use crate::error::AppError;

/// The verdict on one typed line (`None`: it may run), and what is told
/// once per piece of input that had a refused line: that line, its
/// refusal and how many lines of the piece were refused. Made by the
/// daemon for one shell (its server, its owner's role, the rules, the
/// audit trail).
#[derive(Clone)]
pub struct LineJudge {
    judge: Arc<JudgeFn>,
    report: Arc<ReportFn>,
}

/// What a [`LineJudge`] asks of each line.
type JudgeFn = dyn Fn(&str) -> Option<AppError> + Send + Sync;
/// What a [`LineJudge`] tells of a refusal.
type ReportFn = dyn Fn(&str, &AppError, usize) + Send + Sync;

impl LineJudge {
    /// A judge asking `judge` of every line and telling `report` of the
    /// first refusal of each piece of input.
    pub fn new(
        judge: impl Fn(&str) -> Option<AppError> + Send + Sync + 'static,
        report: impl Fn(&str, &AppError, usize) + Send + Sync + 'static,
    ) -> LineJudge {
        LineJudge {
            judge: Arc::new(judge),
            report: Arc::new(report),
        }
    }
}

impl std::fmt::Debug for LineJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineJudge")
    }
}

/// Sent instead of the Enter of a refused line: Ctrl-C.
pub const LINE_KILL: &str = "\u{3}";

/// The longest line kept; keystrokes beyond it are passed on but not
/// tracked (memory stays bounded whatever a client sends).
pub const MAX_LINE: usize = 16 * 1024;

/// Where the guard stands in an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// After `ESC [`: parameters until a final byte.
    Csi,
    /// After `ESC O`: one more byte.
    Ss3,
    /// In a string (`ESC ]`, `ESC P`, `ESC _`, `ESC ^`) until BEL or ST.
    Str,
    /// After ESC inside a string: `\` ends it.
    StrEsc,
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
    /// The CSI parameters so far (to see the paste markers).
    csi: String,
    /// Inside a bracketed paste.
    pasting: bool,
    judge: LineJudge,
}

impl std::fmt::Debug for LineGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineGuard")
            .field("line_len", &self.line.len())
            .finish()
    }
}

/// Whether `line` goes on after its Enter: a trailing backslash, pipe or
/// `&&`/`||`, or an open quote.
fn continued(line: &str) -> bool {
    let trimmed = line.trim_end();
    let trailing_backslashes = line.chars().rev().take_while(|c| *c == '\\').count();
    if trailing_backslashes % 2 == 1 || trimmed.ends_with('|') || trimmed.ends_with("&&") {
        return true;
    }
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
    }
    single || double
}

impl LineGuard {
    /// A guard asking `judge` of every line.
    pub fn new(judge: LineJudge) -> LineGuard {
        LineGuard {
            line: String::new(),
            escape: Escape::None,
            csi: String::new(),
            pasting: false,
            judge,
        }
    }

    /// Passes `input` on: everything as it came, but for the Enter of a
    /// refused line.
    pub fn pass(&mut self, input: &str) -> Passed {
        self.pass_as(input, None)
    }

    /// [`pass`](Self::pass), its Enters judged by `typist` when given (a
    /// co-typist's own rules) instead of the guard's judge.
    pub fn pass_as(&mut self, input: &str, typist: Option<&LineJudge>) -> Passed {
        let judge = typist.unwrap_or(&self.judge).clone();
        let mut out = Passed {
            write: String::with_capacity(input.len()),
            refused: None,
        };
        let mut first: Option<String> = None;
        let mut refusals = 0;
        for c in input.chars() {
            if self.escape != Escape::None && !self.in_sequence(c) {
                // a C0 control ends a sequence and is read as itself
                self.escape = Escape::None;
            }
            if self.escape != Escape::None {
                self.escaped(c);
                out.write.push(c);
                continue;
            }
            match c {
                '\r' | '\n' | '\u{f}' if self.pasting => self.push('\n'),
                '\r' | '\n' | '\u{f}' => {
                    if continued(&self.line) {
                        self.push('\n');
                        out.write.push(c);
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let refusal = if line.trim().is_empty() {
                        None
                    } else {
                        (judge.judge)(&line)
                    };
                    match refusal {
                        Some(refusal) => {
                            out.write.push_str(LINE_KILL);
                            refusals += 1;
                            first.get_or_insert(line);
                            out.refused.get_or_insert(refusal);
                        }
                        None => out.write.push(c),
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
                '\u{17}' => self.erase_word(),
                '\t' => self.push(' '),
                c if c.is_control() => {}
                c => self.push(c),
            }
            out.write.push(c);
        }
        if let (Some(line), Some(refusal)) = (&first, &out.refused) {
            (judge.report)(line, refusal, refusals);
        }
        out
    }

    /// Whether `c` belongs to the escape sequence under way (C0 controls
    /// end one, but for ESC, and BEL which ends a string).
    fn in_sequence(&self, c: char) -> bool {
        let c0 = (c as u32) < 0x20;
        !c0 || c == '\u{1b}' || (c == '\u{7}' && self.escape == Escape::Str)
    }

    /// One character of an escape sequence.
    fn escaped(&mut self, c: char) {
        self.escape = match (self.escape, c) {
            (Escape::Start, '[') => {
                self.csi.clear();
                Escape::Csi
            }
            (Escape::Start, 'O') => Escape::Ss3,
            (Escape::Start, ']' | 'P' | '_' | '^') => Escape::Str,
            // Alt-Backspace: the last word
            (Escape::Start, '\u{7f}') => {
                self.erase_word();
                Escape::None
            }
            (Escape::Start, '\u{1b}') => Escape::Start,
            (Escape::Csi, '\u{20}'..='\u{3f}') => {
                if self.csi.len() < 16 {
                    self.csi.push(c);
                }
                Escape::Csi
            }
            (Escape::Csi, '~') => {
                match self.csi.as_str() {
                    "200" => self.pasting = true,
                    "201" => self.pasting = false,
                    _ => {}
                }
                Escape::None
            }
            (Escape::Str, '\u{7}') => Escape::None,
            (Escape::Str, '\u{1b}') => Escape::StrEsc,
            (Escape::Str, _) => Escape::Str,
            (Escape::StrEsc, '\\') => Escape::None,
            (Escape::StrEsc, _) => Escape::Str,
            _ => Escape::None,
        };
    }

    fn erase_word(&mut self) {
        let kept = self.line.trim_end().len();
        self.line.truncate(kept);
        let start = self
            .line
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        self.line.truncate(start);
    }

    fn push(&mut self, c: char) {
        if self.line.len() + c.len_utf8() <= MAX_LINE {
            self.line.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::error::ErrorCode;

    /// What a test guard reported: each first refused line and its count.
    type Reported = Arc<Mutex<Vec<(String, usize)>>>;

    /// A guard refusing `rm -rf /` as words, and what it reported.
    fn guard() -> (LineGuard, Reported) {
        let reported = Arc::new(Mutex::new(Vec::new()));
        let seen = reported.clone();
        let judge = LineJudge::new(
            |line: &str| {
                let phrase = ["rm", "-rf", "/"].map(str::to_owned);
                crate::policy::words::commands(line)
                    .iter()
                    .any(|c| crate::policy::words::contains(&c.words, &phrase))
                    .then(|| AppError::with_detail(ErrorCode::CommandDenied, "no"))
            },
            move |line, _, count| seen.lock().unwrap().push((line.to_owned(), count)),
        );
        (LineGuard::new(judge), reported)
    }

    #[test]
    fn allowed_lines_pass_byte_for_byte() {
        let (mut g, reported) = guard();
        for input in ["ls -l\r", "e", "cho hi", "\r", "\u{1b}[A\r", "\r\n"] {
            let passed = g.pass(input);
            assert_eq!(passed.write, input);
            assert!(passed.refused.is_none());
        }
        assert!(reported.lock().unwrap().is_empty());
    }

    #[test]
    fn a_refused_enter_becomes_a_line_kill() {
        let (mut g, reported) = guard();
        // typed a key at a time: every key but the Enter goes through
        for c in "rm -rf /".chars() {
            assert_eq!(g.pass(&c.to_string()).write, c.to_string());
        }
        let passed = g.pass("\r");
        assert_eq!(passed.write, LINE_KILL);
        assert_eq!(passed.refused.unwrap().code, ErrorCode::CommandDenied);
        assert_eq!(*reported.lock().unwrap(), vec![("rm -rf /".to_owned(), 1)]);
        // the next line starts clean
        let passed = g.pass("ls\r");
        assert_eq!(passed.write, "ls\r");
        assert!(passed.refused.is_none());
    }

    #[test]
    fn a_paste_of_several_lines_loses_only_the_refused_enter_and_is_told_once() {
        let (mut g, reported) = guard();
        let passed = g.pass("echo a\nsudo rm -rf /\necho b\nrm -rf /\n");
        assert_eq!(
            passed.write,
            format!("echo a\nsudo rm -rf /{LINE_KILL}echo b\nrm -rf /{LINE_KILL}")
        );
        assert!(passed.refused.is_some());
        assert_eq!(*reported.lock().unwrap(), vec![("sudo rm -rf /".to_owned(), 2)]);
    }

    #[test]
    fn a_bracketed_paste_is_judged_whole_at_the_enter_after_it() {
        let (mut g, _) = guard();
        // the line breaks inside the paste are text for the shell: nothing
        // is judged or replaced there
        let paste = "\u{1b}[200~echo a\rrm -rf /\recho b\u{1b}[201~";
        let passed = g.pass(paste);
        assert_eq!(passed.write, paste);
        assert!(passed.refused.is_none());
        // the real Enter judges what was pasted
        let passed = g.pass("\r");
        assert_eq!(passed.write, LINE_KILL);
        assert!(passed.refused.is_some());
    }

    #[test]
    fn editing_keys_change_the_tracked_line() {
        let (mut g, _) = guard();
        // typed, then erased with backspace: "rm -rf /tmp" is fine
        assert!(g.pass("rm -rf /x\u{7f}tmp\r").refused.is_none());
        // Ctrl-U then a fresh dangerous line
        assert!(g.pass("ls\u{15}rm -rf /\r").refused.is_some());
        // Ctrl-W removes the last word: "rm -rf " + "/" is refused
        assert!(g.pass("rm -rf /tmp\u{17}/\r").refused.is_some());
        // Alt-Backspace too
        assert!(g.pass("rm -rf /tmp\u{1b}\u{7f}/\r").refused.is_some());
        // Ctrl-C drops what was typed
        assert!(g.pass("rm -rf /\u{3}\r").refused.is_none());
        // Ctrl-O accepts the line as Enter does
        assert_eq!(g.pass("rm -rf /\u{f}").write, format!("rm -rf /{LINE_KILL}"));
    }

    #[test]
    fn ctrl_w_after_wide_whitespace_does_not_panic() {
        let (mut g, _) = guard();
        let passed = g.pass("a\u{a0}b\u{17}\u{3000}c\u{17}\u{17}\r");
        assert!(passed.refused.is_none());
    }

    #[test]
    fn escape_sequences_are_passed_on_but_not_typed() {
        let (mut g, _) = guard();
        // an arrow key between the words does not add letters
        assert!(g.pass("rm -rf \u{1b}[D\u{1b}[C/\r").refused.is_some());
        // an SS3 key (F1) in a line
        assert!(g.pass("\u{1b}OPls\r").refused.is_none());
        // a terminal's report (OSC ... BEL, OSC ... ST) adds nothing
        assert!(g
            .pass("\u{1b}]11;rgb:0000/0000/0000\u{7}rm -rf /\r")
            .refused
            .is_some());
        assert!(g.pass("\u{1b}]10;rgb:ffff\u{1b}\\rm -rf /\r").refused.is_some());
    }

    #[test]
    fn an_enter_after_escape_is_still_judged() {
        let (mut g, _) = guard();
        // vi mode: Esc then Enter, in two pieces
        assert!(g.pass("rm -rf /").refused.is_none());
        assert!(g.pass("\u{1b}").refused.is_none());
        let passed = g.pass("\r");
        assert!(passed.refused.is_some());
        assert_eq!(passed.write, LINE_KILL);
        // ESC [ then Enter
        assert!(g.pass("rm -rf /\u{1b}[\r").refused.is_some());
    }

    #[test]
    fn a_continued_line_is_judged_whole_at_its_last_enter() {
        let (mut g, _) = guard();
        let passed = g.pass("sudo rm -rf \\\r");
        assert_eq!(passed.write, "sudo rm -rf \\\r");
        assert!(passed.refused.is_none());
        let passed = g.pass("/ --no-preserve-root\r");
        assert!(passed.refused.is_some(), "judged as one line");
        // an open quote continues too
        assert!(g.pass("echo 'a\r").refused.is_none());
        assert!(g.pass("b'; rm -rf /\r").refused.is_some());
    }

    #[test]
    fn an_empty_line_is_never_judged_and_long_lines_stay_bounded() {
        let judged = Arc::new(Mutex::new(0));
        let count = judged.clone();
        let mut g = LineGuard::new(LineJudge::new(
            move |_| {
                *count.lock().unwrap() += 1;
                Some(AppError::new(ErrorCode::CommandDenied))
            },
            |_, _, _| {},
        ));
        assert_eq!(g.pass("\r  \r").write, "\r  \r");
        assert_eq!(*judged.lock().unwrap(), 0);
        let long = "x".repeat(MAX_LINE * 2);
        assert_eq!(g.pass(&long).write.len(), long.len());
        assert!(g.line.len() <= MAX_LINE);
    }
}
