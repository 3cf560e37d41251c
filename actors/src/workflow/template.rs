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
//! What is refused when the servers file is read, so a bad template never
//! reaches a run:
//! - a placeholder inside single or double quotes: quoting there would be
//!   spliced as text (`'{{x}}'` renders as `''\''x'\'''`... or worse,
//!   inside `"` a `$(...)` in the value would run);
//! - a placeholder naming no declared parameter (a typo would otherwise
//!   send `{{nmae}}` to the shell);
//! - an unclosed `{{`.
//!
//! Shell braces are left alone: `${HOME}`, `{a,b}`, awk's `'{print $1}'`
//! and find's `{}` are plain text (single braces, or inside quotes).

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

impl Template {
    /// Parses `source`; `declared` says whether a parameter exists.
    pub fn parse(source: &str, declared: &dyn Fn(&str) -> bool) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        // The quoting state of the shell text read so far.
        let (mut single, mut double, mut escaped) = (false, false, false);
        let mut rest = source;
        while let Some(ch) = rest.chars().next() {
            if !escaped && !single && rest.starts_with("{{") {
                let end = rest[2..]
                    .find("}}")
                    .ok_or_else(|| format!("unclosed '{{{{' in '{source}'"))?;
                let name = rest[2..2 + end].trim();
                if !declared(name) {
                    return Err(format!("'{{{{{name}}}}}' names no parameter of this workflow"));
                }
                if double {
                    return Err(format!(
                        "'{{{{{name}}}}}' is inside double quotes; put it outside quotes (its value is quoted for the shell)"
                    ));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Param(name.to_owned()));
                rest = &rest[2 + end + 2..];
                continue;
            }
            if single && rest.starts_with("{{") {
                let name = rest[2..].split("}}").next().unwrap_or("").trim();
                if rest[2..].contains("}}") && declared(name) {
                    return Err(format!(
                        "'{{{{{name}}}}}' is inside single quotes; put it outside quotes (its value is quoted for the shell)"
                    ));
                }
            }
            match ch {
                _ if escaped => escaped = false,
                '\\' if !single => escaped = true,
                '\'' if !double => single = !single,
                '"' if !single => double = !double,
                _ => {}
            }
            text.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
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
        ] {
            let err = Template::parse(t, &declared).unwrap_err();
            assert!(err.contains(why), "{t}: {err}");
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
