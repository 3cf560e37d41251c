//! The one place that builds what is typed into the login shell in shell
//! mode: the two probe lines and the command lines.
//!
//! Everything typed is printable ASCII (0x20-0x7e) and each line is at most
//! [`MAX_LINE`] bytes, because a terminal is not a byte pipe:
//! - control characters are terminal commands (Ctrl-C, Ctrl-D, Ctrl-U,
//!   DEL, Tab's completion in readline);
//! - bytes above 0x7f are Meta keys in readline under a C locale;
//! - a tty in canonical mode (dash, which has no line editor, and any shell
//!   while it is busy) keeps at most 4095 bytes of one line.
//!
//! So the command never appears as itself: its bytes go through `printf`
//! with every byte outside a small safe set written as a three-digit
//! octal escape (`\047` for `'`, `\012` for a newline, `\355` for a byte of
//! `한`), and a long command is assembled in the shell variable `_pp_c` over
//! several lines. The command then runs as `(eval "$_pp_c")`: a comment,
//! a trailing `&`, a here-doc or an unbalanced quote in it stays inside the
//! `eval` and cannot swallow what follows, the subshell keeps its `exit`
//! from ending the login shell, and resets the login shell's `INT` trap so
//! Ctrl-C reaches the command as it would in exec mode.
//!
//! Markers (see [`super::markers`]) are printed by `printf` from a format
//! that spells ESC and BEL as `\033` and `\007`, so the typed text (and its
//! echo) never contains a marker verbatim.

use std::fmt::Write as _;

/// The longest line typed: well under the 4095 bytes a canonical-mode tty
/// keeps of one line, and short enough for a gateway's terminal buffers.
pub const MAX_LINE: usize = 1024;

/// Bytes of escaped command per line when the command is built in pieces
/// (the rest of the line is the assignment around it).
const PIECE: usize = MAX_LINE - 64;

/// A per-command random token: markers carry it, so output that merely
/// looks like a marker (another run's, a test's) is never taken for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A fresh token: 32 lowercase hex digits (122 random bits).
    pub fn random() -> Token {
        Token(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fixed token, for tests.
    #[cfg(test)]
    pub fn fixed(text: &str) -> Token {
        Token(text.to_owned())
    }
}

/// What the command's terminal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// A terminal someone watches (STUB, workflow steps, scripts): the
    /// command keeps the terminal as it is, input included.
    Terminal,
    /// Output captured as a result (BMX4, `diff_command`): stdin is
    /// `/dev/null`, as in exec mode, and the tty stops turning `\n` into
    /// `\r\n` (`stty -onlcr`), so lines end as they would without a PTY.
    Captured,
}

/// The two probe lines, typed as soon as the shell is granted.
///
/// The first is wrapped in `eval '...'` so that a shell that does not
/// understand it (fish, tcsh) fails while running it rather than while
/// parsing it: fish keeps a line that does not parse in its editor and
/// would glue the second line onto it. In a POSIX shell it empties `PS2`,
/// sets `PS1` to the abort marker (a prompt after the command started means
/// the shell abandoned the command line), turns job control off (so
/// background jobs share the shell's process group and die with the
/// terminal, as in exec mode), traps `INT` (so Ctrl-C ends the command, not
/// the rest of the line), stops history from being saved, and prints the
/// probe marker with `$((1+1))`, which only a POSIX shell turns into `2`.
/// The second line prints the ready marker with `$SHELL` in every shell.
pub fn probe_lines(token: &Token) -> String {
    let t = token.as_str();
    format!(
        " eval 'unset HISTFILE PROMPT_COMMAND; PS1=$(printf \"\\033]pp;%s;A\\007\" {t}); PS2=; \
         set +m 2>/dev/null; trap : INT; printf \"\\033]pp;%s;P%s\\007\" {t} \"$((1+1))\"'\n \
         printf '\\033]pp;%s;N%s\\007' {t} \"$SHELL\"\n"
    )
}

/// The lines that run `command` and print its end marker, typed once the
/// probe said the shell is POSIX. The last line ends with `exit`.
pub fn command_lines(token: &Token, command: &str, flavour: Flavour) -> String {
    let t = token.as_str();
    let pieces = escaped_pieces(command.as_bytes(), PIECE);
    let mut out = String::new();
    let [only] = pieces.as_slice() else {
        out.push_str(" _pp_c=\n");
        for piece in &pieces {
            let _ = writeln!(out, " _pp_t=$(printf '{piece}_'); _pp_c=$_pp_c${{_pp_t%_}}");
        }
        out.push(' ');
        push_run(&mut out, t, flavour);
        return out;
    };
    // the `_` keeps `$(...)` from eating the command's trailing newlines
    let _ = write!(out, " _pp_c=$(printf '{only}_'); _pp_c=${{_pp_c%_}}; ");
    push_run(&mut out, t, flavour);
    out
}

/// The begin marker, the command, the end marker with `$?`, and `exit`,
/// all on one line: the shell has read everything typed before the begin
/// marker is printed, so no echo of typed text follows it.
fn push_run(out: &mut String, t: &str, flavour: Flavour) {
    let (before, stdin) = match flavour {
        Flavour::Terminal => ("", ""),
        Flavour::Captured => ("stty -onlcr 2>/dev/null; ", " </dev/null"),
    };
    let _ = writeln!(
        out,
        "{before}printf '\\033]pp;%s;B\\007' {t}; (eval \"$_pp_c\"){stdin}; \
         printf '\\033]pp;%s;E%s\\007' {t} \"$?\"; exit"
    );
}

/// Bytes typed as themselves; everything else is an octal escape. No `-`
/// (a format must not start like an option), `%` (a conversion), `\`,
/// quotes, `!` (history expansion) or `$`.
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" ,./:=+@_".contains(&b)
}

/// `bytes` as `printf` format text, cut into pieces of at most `max`
/// characters, never inside an escape.
fn escaped_pieces(bytes: &[u8], max: usize) -> Vec<String> {
    let mut pieces = vec![String::new()];
    for &b in bytes {
        let unit_len = if is_safe(b) { 1 } else { 4 };
        if pieces.last().is_some_and(|p| p.len() + unit_len > max) {
            pieces.push(String::new());
        }
        let piece = pieces.last_mut().expect("never empty");
        if is_safe(b) {
            piece.push(b as char);
        } else {
            let _ = write!(piece, "\\{b:03o}");
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::fixed("0123456789abcdef0123456789abcdef")
    }

    /// What `printf` makes of an escaped piece (the shell's side, written
    /// out: octal escapes only, which is all the builder emits).
    fn unescape(piece: &str) -> Vec<u8> {
        let b = piece.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' {
                let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap();
                out.push(u8::from_str_radix(oct, 8).unwrap());
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    /// The command as the shell assembles it from the typed lines.
    fn assembled(lines: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines.lines() {
            if let Some(rest) = line.split("printf '").nth(1) {
                if let Some((piece, _)) = rest.split_once("_')") {
                    out.extend(unescape(piece));
                }
            }
        }
        out
    }

    fn assert_typeable(text: &str) {
        for line in text.split_inclusive('\n') {
            assert!(line.len() <= MAX_LINE, "a line of {} bytes", line.len());
        }
        assert!(
            text.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\n'),
            "typed text must be printable ASCII: {text:?}"
        );
    }

    fn assert_round_trips(command: &str) -> String {
        let lines = command_lines(&token(), command, Flavour::Terminal);
        assert_typeable(&lines);
        assert_eq!(assembled(&lines), command.as_bytes(), "{lines}");
        lines
    }

    #[test]
    fn a_short_command_is_one_line_that_runs_it_and_exits() {
        let lines = assert_round_trips("echo hello");
        assert_eq!(lines.lines().count(), 1);
        assert!(lines.ends_with("; exit\n"), "{lines}");
        assert!(lines.contains("(eval \"$_pp_c\");"), "{lines}");
    }

    #[test]
    fn single_quotes_and_shell_syntax_are_escaped_not_typed() {
        let lines = assert_round_trips("printf '%s\\n' \"it's\" $HOME !! `id` 100%");
        // nothing the shell or readline would act on is typed as itself
        let piece = lines.split("printf '").nth(1).unwrap();
        let piece = piece.split_once("_')").unwrap().0;
        for b in ['\'', '"', '$', '!', '`', '%', '\\'] {
            if b != '\\' {
                assert!(!piece.contains(b), "{b} typed as itself in {piece}");
            }
        }
    }

    #[test]
    fn a_comment_a_trailing_ampersand_and_a_here_doc_stay_inside_the_eval() {
        for command in [
            "echo one # a comment",
            "sleep 10 &",
            "cat <<'EOF'\nline $1\n\tTab\nEOF\necho after",
        ] {
            let lines = assert_round_trips(command);
            // the end marker follows the eval on the same line, whatever
            // the command holds
            let last = lines.lines().last().unwrap();
            assert!(last.contains("(eval \"$_pp_c\"); printf"), "{last}");
            assert!(
                !lines.contains('#') && !lines.contains('&') && !lines.contains('<'),
                "{lines}"
            );
        }
    }

    #[test]
    fn control_characters_and_non_ascii_are_octal_escapes() {
        let lines = assert_round_trips("echo 안녕\x03\x04\x15\x7f\t\r");
        assert!(lines.contains("\\003\\004\\025\\177\\011\\015"), "{lines}");
        assert!(lines.contains("\\354\\225\\210"), "{lines}");
    }

    #[test]
    fn a_command_starting_with_a_dash_never_starts_a_printf_format() {
        let lines = assert_round_trips("-x");
        assert!(lines.contains("printf '\\055x_'"), "{lines}");
    }

    #[test]
    fn a_20_kib_command_is_built_over_short_lines() {
        let command: String = (0..2000).map(|i| format!("echo '{i}';\n")).collect::<String>();
        assert!(command.len() > 20 * 1024);
        let lines = assert_round_trips(&command);
        assert!(lines.lines().count() > 20, "{} lines", lines.lines().count());
        assert!(lines.starts_with(" _pp_c=\n"));
        assert!(lines.lines().last().unwrap().ends_with("; exit"));
    }

    #[test]
    fn a_64_kib_command_of_escapes_only_never_splits_an_escape() {
        let command = "'".repeat(64 * 1024);
        assert_round_trips(&command);
    }

    #[test]
    fn an_empty_command_still_prints_both_markers() {
        let lines = assert_round_trips("");
        assert!(
            lines.contains(";B\\007'") && lines.contains(";E%s\\007'"),
            "{lines}"
        );
    }

    #[test]
    fn captured_runs_read_dev_null_and_keep_newlines_as_they_are() {
        let lines = command_lines(&token(), "cat", Flavour::Captured);
        assert!(lines.contains("stty -onlcr 2>/dev/null; printf"), "{lines}");
        assert!(lines.contains("(eval \"$_pp_c\") </dev/null;"), "{lines}");
        let terminal = command_lines(&token(), "cat", Flavour::Terminal);
        assert!(
            !terminal.contains("/dev/null") && !terminal.contains("stty"),
            "{terminal}"
        );
    }

    #[test]
    fn the_typed_text_never_holds_a_marker_verbatim() {
        let t = token();
        let typed = probe_lines(&t) + &command_lines(&t, "echo hi", Flavour::Terminal);
        assert_typeable(&typed);
        assert!(!typed.contains('\x1b') && !typed.contains('\x07'));
        // the markers' formats spell ESC and BEL as escapes
        assert_eq!(typed.matches("\\033]pp;%s;").count(), 5, "{typed}");
    }

    #[test]
    fn the_probe_is_posix_arithmetic_inside_an_eval_then_a_line_every_shell_runs() {
        let probe = probe_lines(&token());
        let lines: Vec<&str> = probe.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(" eval '") && lines[0].ends_with('\''));
        assert!(lines[0].contains("\"$((1+1))\""));
        assert!(lines[0].contains("set +m") && lines[0].contains("trap : INT"));
        assert!(lines[1].contains(";N%s\\007' 0123456789abcdef0123456789abcdef \"$SHELL\""));
    }
}
