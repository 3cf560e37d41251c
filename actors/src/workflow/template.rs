//! Command templates: `tar -C {{dir}} -cf - .` with parameters that reach
//! the shell only as quoted words.
//!
//! A placeholder is `{{name}}` (spaces inside the braces allowed). When a
//! template is rendered each placeholder becomes its value as ONE
//! single-quoted POSIX word ([`crate::files::shell_quote::quote`], the same
//! quoting as script arguments), so a value of `x; touch /tmp/pwned` is the
//! literal text `x; touch /tmp/pwned` to the command and runs nothing.
//! Next to other text a quoted word joins it (`/data/{{day}}.dat` becomes
//! `/data/'2026-11-29'.dat`, one word to the shell).
//!
//! The template is read with the shell's own quoting rules (single and
//! double quotes, backslashes, `$( )` with its own quoting inside, `#`
//! comments), and what is refused when the servers file is read, so a bad
//! template never reaches a run:
//! - a placeholder inside single or double quotes (the quoted value would
//!   be spliced into a quoted string; inside `"` a `$(...)` in the value
//!   would run), inside a comment (a newline in the value would end it),
//!   or after a backslash;
//! - in a template with placeholders, the constructs where the shell reads
//!   a quoted word differently: backquotes, heredocs (`<<`), `$'...'`,
//!   arithmetic (`$((`, `((`) and `[[ ]]`;
//! - a placeholder naming no declared parameter (a typo would otherwise
//!   send `{{nmae}}` to the shell); an unclosed `{{`, quote or `$(`.
//!
//! Values are also checked for their part (`definition`): no NUL and no
//! control characters (a newline) in a `string`. The quoting is POSIX: the
//! server user's login shell must be a POSIX shell (sh, bash, dash, ksh,
//! zsh), as for script arguments.
//!
//! Shell braces are left alone: `${HOME}`, `{a,b}`, awk's `'{print $1}'`
//! and find's `{}` are plain text (single braces, or inside quotes).
//! Messages shown to operators ([`Template::plain`]) have placeholders
//! only, no shell rules.

use crate::files::shell_quote::quote;

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
}

/// How a template is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// Each value as one quoted shell word (commands).
    Shell,
    /// Each value as it is (messages shown to the operator, never run).
    Plain,
}

/// Where the shell text read so far stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Plain words.
    Top,
    /// Inside `'...'`.
    Single,
    /// Inside `"..."`.
    Double,
    /// Inside `$( ... )`, with the `(` opened within it: a new quoting
    /// context, so `"$(dirname {{p}})"` is as safe as the plain word.
    Subst(u32),
    /// From a `#` that starts a word to the end of the line.
    Comment,
}

impl Template {
    /// Parses a command template; `declared` says whether a parameter
    /// exists. See the module docs for what is refused.
    pub fn parse(source: &str, declared: &dyn Fn(&str) -> bool) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut stack = vec![Ctx::Top];
        let mut escaped = false;
        let mut word_start = true;
        // The first construct that makes a placeholder unsafe anywhere in
        // the command (refused only when the template has placeholders).
        let mut risky: Option<&'static str> = None;
        let mut rest = source;
        while let Some(ch) = rest.chars().next() {
            let ctx = *stack.last().unwrap_or(&Ctx::Top);
            if rest.starts_with("{{") {
                let end = rest[2..]
                    .find("}}")
                    .ok_or_else(|| format!("unclosed '{{{{' in '{source}'"))?;
                let name = rest[2..2 + end].trim();
                let named = declared(name);
                match ctx {
                    Ctx::Single | Ctx::Comment if !named => {}
                    Ctx::Single => {
                        return Err(format!(
                            "'{{{{{name}}}}}' is inside single quotes; put it outside quotes (its value is quoted for the shell)"
                        ))
                    }
                    Ctx::Comment => return Err(format!("'{{{{{name}}}}}' is inside a shell comment")),
                    _ if !named => return Err(format!("'{{{{{name}}}}}' names no parameter of this workflow")),
                    _ if escaped => return Err(format!("'{{{{{name}}}}}' follows a backslash")),
                    Ctx::Double => {
                        return Err(format!(
                            "'{{{{{name}}}}}' is inside double quotes; put it outside quotes (its value is quoted for the shell)"
                        ))
                    }
                    Ctx::Top | Ctx::Subst(_) => {
                        if !text.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut text)));
                        }
                        pieces.push(Piece::Param(name.to_owned()));
                        rest = &rest[2 + end + 2..];
                        word_start = false;
                        continue;
                    }
                }
            }
            let mut take = ch.len_utf8();
            if escaped {
                escaped = false;
            } else {
                let next = |s: &str| rest[ch.len_utf8()..].starts_with(s);
                match (ctx, ch) {
                    (Ctx::Single, '\'') => {
                        stack.pop();
                    }
                    (Ctx::Comment, '\n') => {
                        stack.pop();
                    }
                    (Ctx::Single | Ctx::Comment, _) => {}
                    (_, '\\') => escaped = true,
                    (Ctx::Double, '"') => {
                        stack.pop();
                    }
                    (_, '`') => risky = risky.or(Some("`")),
                    (_, '$') if next("((") => risky = risky.or(Some("$((")),
                    (_, '$') if next("(") => {
                        stack.push(Ctx::Subst(0));
                        take += 1;
                    }
                    (Ctx::Double, _) => {}
                    (_, '\'') => stack.push(Ctx::Single),
                    (_, '"') => stack.push(Ctx::Double),
                    (_, '#') if word_start => stack.push(Ctx::Comment),
                    (_, '$') if next("'") => risky = risky.or(Some("$'")),
                    (_, '<') if next("<") => risky = risky.or(Some("<<")),
                    (_, '[') if next("[") => risky = risky.or(Some("[[")),
                    (_, '(') if next("(") => risky = risky.or(Some("((")),
                    (Ctx::Subst(n), '(') => {
                        stack.pop();
                        stack.push(Ctx::Subst(n + 1));
                    }
                    (Ctx::Subst(0), ')') => {
                        stack.pop();
                    }
                    (Ctx::Subst(n), ')') => {
                        stack.pop();
                        stack.push(Ctx::Subst(n - 1));
                    }
                    _ => {}
                }
            }
            word_start = ch.is_whitespace() || matches!(ch, ';' | '&' | '|' | '(' | ')');
            text.push_str(&rest[..take]);
            rest = &rest[take..];
        }
        if stack.last() == Some(&Ctx::Comment) {
            stack.pop();
        }
        if escaped || stack != [Ctx::Top] {
            return Err(format!(
                "an unclosed quote, '$(' or trailing backslash in '{source}'"
            ));
        }
        let has_params = pieces.iter().any(|p| matches!(p, Piece::Param(_)));
        if let (true, Some(construct)) = (has_params, risky) {
            return Err(format!(
                "'{construct}' cannot be used in a command with parameters: the shell reads values there differently (heredocs, backquotes, $'...', arithmetic, [[ ]]); move that part into a script"
            ));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            pieces,
        })
    }

    /// Parses a message shown to operators (never run): placeholders only,
    /// no shell rules; rendered with [`Render::Plain`].
    pub fn plain(source: &str, declared: &dyn Fn(&str) -> bool) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find("{{") {
            let end = rest[at + 2..]
                .find("}}")
                .ok_or_else(|| format!("unclosed '{{{{' in '{source}'"))?;
            let name = rest[at + 2..at + 2 + end].trim();
            if !declared(name) {
                return Err(format!("'{{{{{name}}}}}' names no parameter of this workflow"));
            }
            if at > 0 {
                pieces.push(Piece::Text(rest[..at].to_owned()));
            }
            pieces.push(Piece::Param(name.to_owned()));
            rest = &rest[at + 2 + end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parameters it uses, in order (with repeats).
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Param(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The text with every placeholder replaced by its value; `value`
    /// answers for every declared parameter (binding made sure of that).
    pub fn render(&self, how: Render, value: &dyn Fn(&str) -> String) -> String {
        let mut out = String::with_capacity(self.source.len());
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Param(name) => match how {
                    Render::Shell => out.push_str(&quote(&value(name))),
                    Render::Plain => out.push_str(&value(name)),
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(name: &str) -> bool {
        matches!(name, "dir" | "day")
    }

    fn shell(t: &str, dir: &str) -> String {
        Template::parse(t, &declared)
            .unwrap()
            .render(Render::Shell, &|n| {
                if n == "dir" {
                    dir.to_owned()
                } else {
                    "d".to_owned()
                }
            })
    }

    #[test]
    fn a_value_becomes_one_quoted_word() {
        assert_eq!(
            shell("ls {{dir}}", "x; touch /tmp/pwned"),
            "ls 'x; touch /tmp/pwned'"
        );
        assert_eq!(shell("ls {{ dir }}/a", "it's"), "ls 'it'\\''s'/a");
        assert_eq!(shell("echo {{dir}}{{day}}", "a"), "echo 'a''d'");
    }

    #[test]
    fn shell_braces_and_quoted_text_are_left_alone() {
        for t in [
            "echo ${HOME} {a,b}",
            "awk '{print $1}'",
            "find . -exec rm {} \\;",
            "echo '{{x}}'",
        ] {
            assert_eq!(shell(t, "v"), t);
        }
    }

    #[test]
    fn bad_templates_are_refused_with_a_reason() {
        for (t, why) in [
            ("echo {{nope}}", "names no parameter"),
            ("echo '{{dir}}'", "inside single quotes"),
            ("echo \"{{dir}}\"", "inside double quotes"),
            ("echo {{dir", "unclosed"),
            // nested quotes inside $( ) inside quotes: a new double-quoted
            // string, and the value would be spliced into it
            ("cd \"$(dirname \"{{dir}}\")\"", "inside double quotes"),
            ("cat >f <<EOF\nx={{dir}}\nEOF", "'<<' cannot"),
            ("echo `basename {{dir}}`", "'`' cannot"),
            ("run {{dir}} # for {{dir}}", "inside a shell comment"),
            ("printf $'a\\n' {{dir}}", "'$'' cannot"),
            // bash ends this $'..' later than POSIX does: refused either way
            ("printf $'it\\'s' {{dir}}", "inside single quotes"),
            ("[[ {{dir}} -gt 3 ]]", "'[[' cannot"),
            ("echo $(( {{dir}} + 1 ))", "'$((' cannot"),
            ("(( {{dir}} > 1 ))", "'((' cannot"),
            ("echo \\{{dir}}", "follows a backslash"),
            ("echo 'abc", "unclosed quote"),
            ("echo $(ls {{dir}}", "unclosed quote"),
        ] {
            let err = Template::parse(t, &declared).unwrap_err();
            assert!(err.contains(why), "{t}: {err}");
        }
        // without placeholders the same constructs are the definer's own
        assert!(Template::parse("cat <<EOF\nx\nEOF", &declared).is_ok());
    }

    #[test]
    fn placeholders_in_command_substitution_and_after_comments_are_accepted() {
        for t in [
            "cd \"$(dirname {{dir}})\" && ls",
            "echo $(seq 1 {{day}}) ${HOME:-x} {{dir}}",
            "a=1 # a comment\necho {{dir}}",
            "echo a#b {{dir}}",
        ] {
            assert!(Template::parse(t, &declared).is_ok(), "{t}");
        }
    }

    #[test]
    fn a_real_shell_gets_each_value_as_one_word_however_hostile() {
        let t = Template::parse(
            "printf '<%s>' {{dir}} \"$(printf '%s' {{dir}})\" x{{day}}y",
            &declared,
        )
        .unwrap();
        for value in [
            "x; touch /tmp/pinkpage-pwned",
            "$(id)",
            "`id`",
            "'; id; '",
            "\" ; id ; \"",
            "a b\tc",
            "\\",
            "*",
            "-n",
        ] {
            let line = t.render(Render::Shell, &|n| {
                if n == "dir" {
                    value.to_owned()
                } else {
                    "D".to_owned()
                }
            });
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                format!("<{value}><{value}><xDy>"),
                "{line}"
            );
        }
    }

    #[test]
    fn an_escaped_quote_does_not_open_quotes() {
        assert_eq!(shell("echo \\' {{dir}}", "v"), "echo \\' 'v'");
        assert_eq!(shell("echo \"a\\\"b\" {{dir}}", "v"), "echo \"a\\\"b\" 'v'");
    }

    #[test]
    fn plain_rendering_is_for_messages() {
        let t = Template::parse("check {{dir}}", &declared).unwrap();
        assert_eq!(t.render(Render::Plain, &|_| "a b".to_owned()), "check a b");
        assert_eq!(t.params().collect::<Vec<_>>(), ["dir"]);
    }
}
