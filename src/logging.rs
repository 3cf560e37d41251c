//! Logging: `log` + `env_logger`, filtered by `RUST_LOG` (default `info`).
//!
//! Call sites log structured key-values
//! (`info!(server = name, connection_id = id; "ssh command started")`).
//! `PINKPAGE_LOG_FORMAT=text` prints them after the message;
//! `PINKPAGE_LOG_FORMAT=json` writes one JSON object a line:
//! `{"time", "level", "target", "message", "fields": {...}}`.
//!
//! Nothing here filters secrets: secrets are kept out of log calls by type
//! (`Secret` prints as `[redacted]`) and by review. The one exception is
//! a library that logs what we hand it: the PostgreSQL driver writes every
//! statement's parameters (password and token hashes among them) at
//! debug, so its targets are held at `warn` whatever `RUST_LOG` says
//! ([`QUIET`]).
//!
//! Client strings (paths, server names, error details quoting them) reach
//! the log through messages and fields, so both formats make sure one
//! record is one line and one value one field: JSON escapes by itself, and
//! the text format passes the message and every field through
//! [`escape_control`], so a path with a newline cannot forge a log line of
//! its own, nor an escape sequence repaint the operator's terminal, and
//! quotes every value that could read as more than one (logfmt's rule:
//! [`text_value`]), so a path `/x user=admin peer=10.9.9.9` stays one
//! quoted value of its own field instead of forging `user` and `peer`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;

use log::kv::{self, VisitSource};

use crate::settings::LogFormat;

/// Libraries whose debug and info lines would carry our secrets: held at
/// `warn`, after `RUST_LOG`, so no directive of it can lower them.
pub const QUIET: &[&str] = &["tokio_postgres", "deadpool_postgres"];

/// Installs the global logger. Safe to call once per process.
pub fn init(format: LogFormat) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter);
    for target in QUIET {
        builder.filter_module(target, log::LevelFilter::Warn);
    }
    match format {
        LogFormat::Json => builder.format(|buf, record| writeln!(buf, "{}", json_line(record))),
        LogFormat::Text => builder.format(|buf, record| writeln!(buf, "{}", text_line(record))),
    };
    // A second init (tests that build two apps in one process) is harmless.
    let _ = builder.try_init();
}

/// Renders one record as the JSON line the `json` format writes.
pub fn json_line(record: &log::Record<'_>) -> serde_json::Value {
    let mut fields = FieldMap(serde_json::Map::new());
    let _ = record.key_values().visit(&mut fields);
    serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": record.level().as_str(),
        "target": record.target(),
        "message": record.args().to_string(),
        "fields": serde_json::Value::Object(fields.0),
    })
}

/// Renders one record as the `text` format writes it, env_logger's layout
/// (`[time LEVEL target] message key=value ...`) with every control
/// character of the message and the values escaped, and values (and a
/// message) that could read as fields quoted.
pub fn text_line(record: &log::Record<'_>) -> String {
    let message = record.args().to_string();
    // A message is words; one with `=` or `"` in it (a client string
    // formatted into it) is quoted whole, so it cannot read as fields.
    let message = if message.contains(['=', '"']) {
        Cow::Owned(quoted(&message))
    } else {
        escape_control(&message)
    };
    let mut line = format!(
        "[{} {:<5} {}] {}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        record.level(),
        record.target(),
        message,
    );
    let _ = record.key_values().visit(&mut TextFields(&mut line));
    line
}

/// Escapes what could break a log line or a terminal: control characters
/// (`\n`, `\r`, `\t`, others as `\u{..}`), the Unicode line and paragraph
/// separators, and bidirectional overrides (which can make text read
/// backwards). Everything else, backslashes included, is left as it is.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    fn needs_escape(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One field value as the text format writes it: as it is when it is one
/// plain word, otherwise in double quotes with `"` and `\` escaped (and
/// control characters, as everywhere): empty, or with whitespace, `=`,
/// `"`, `\` or a control character in it.
pub fn text_value(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '=' | '"' | '\\') || c.is_control());
    if plain {
        escape_control(value)
    } else {
        Cow::Owned(quoted(value))
    }
}

/// `text` in double quotes, `"` and `\` escaped, control characters as
/// [`escape_control`] writes them.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push_str(&escape_control(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push('"');
    out
}

struct TextFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextFields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let value = value.to_string();
        let _ = write!(self.0, " {}={}", text_value(key.as_str()), text_value(&value));
        Ok(())
    }
}

struct FieldMap(serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for FieldMap {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let json =
            serde_json::to_value(&value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_fields_becomes_one_json_object() {
        let kvs: &[(&str, kv::Value)] = &[
            ("server", kv::Value::from("mdwap1p")),
            ("port", kv::Value::from(22u16)),
        ];
        let record = log::Record::builder()
            .level(log::Level::Info)
            .target("pinkpage::test")
            .args(format_args!("connected"))
            .key_values(&kvs)
            .build();
        let line = json_line(&record);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "pinkpage::test");
        assert_eq!(line["message"], "connected");
        assert_eq!(line["fields"]["server"], "mdwap1p");
        assert_eq!(line["fields"]["port"], 22);
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
        assert!(!line.to_string().contains('\n'));
    }

    #[test]
    fn a_newline_in_a_message_or_field_stays_on_one_text_line() {
        let path = "/tmp/x\n[2026-11-29T00:00:00Z INFO  pinkpage] forged";
        let kvs: &[(&str, kv::Value)] = &[("path", kv::Value::from(path))];
        let message = format!("opened {path}");
        let line = text_line(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("pinkpage::test")
                .args(format_args!("{message}"))
                .key_values(&kvs)
                .build(),
        );
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.contains("opened /tmp/x\\n[2026"), "{line}");
        assert!(
            line.ends_with(" path=\"/tmp/x\\n[2026-11-29T00:00:00Z INFO  pinkpage] forged\""),
            "{line}"
        );
        assert!(line.contains(" INFO  pinkpage::test] "), "{line}");
    }

    #[test]
    fn control_and_direction_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape_control("a\tb\r\x1b[31m\u{7f}"),
            "a\\tb\\r\\u{1b}[31m\\u{7f}"
        );
        assert_eq!(
            escape_control("evil\u{202e}txt.exe\u{2028}"),
            "evil\\u{202e}txt.exe\\u{2028}"
        );
        assert!(matches!(
            escape_control("plain 한글 \\n"),
            Cow::Borrowed("plain 한글 \\n")
        ));
    }

    /// The fields a text line reads as, the way a reader (or `grep
    /// user=`) splits it: `key=value` words, a value in quotes taken whole.
    fn fields_of(line: &str) -> Vec<(String, String)> {
        let rest = &line[line.find("] ").unwrap() + 2..];
        let mut out = Vec::new();
        let mut chars = rest.chars().peekable();
        let mut word = String::new();
        let mut words = Vec::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    word.push(c);
                    while let Some(c) = chars.next() {
                        word.push(c);
                        if c == '\\' {
                            word.extend(chars.next());
                        } else if c == '"' {
                            break;
                        }
                    }
                }
                ' ' => words.push(std::mem::take(&mut word)),
                c => word.push(c),
            }
        }
        words.push(word);
        for w in words {
            // a key is a bare word; a quoted word is a value, never a key
            match w.split_once('=') {
                Some((k, v)) if !k.contains('"') => out.push((k.to_owned(), v.to_owned())),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn a_value_with_spaces_and_equals_signs_stays_one_quoted_field_in_text_and_json() {
        let path = "/x user=admin peer=10.9.9.9";
        let kvs: &[(&str, kv::Value)] = &[("path", kv::Value::from(path)), ("user", kv::Value::from("ana"))];
        let record = || {
            log::Record::builder()
                .level(log::Level::Info)
                .target("pinkpage::test")
                .args(format_args!("sftp download"))
                .key_values(&kvs)
                .build()
        };
        let line = text_line(&record());
        assert_eq!(
            fields_of(&line),
            [
                ("path".to_owned(), "\"/x user=admin peer=10.9.9.9\"".to_owned()),
                ("user".to_owned(), "ana".to_owned())
            ],
            "{line}"
        );
        let json = json_line(&record());
        assert_eq!(json["fields"]["path"], path);
        assert_eq!(json["fields"]["user"], "ana");
        assert_eq!(json["fields"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn quotes_backslashes_and_empty_values_are_quoted_and_a_message_with_fields_in_it_too() {
        assert_eq!(text_value("plain-word_1.2:3/x"), "plain-word_1.2:3/x");
        assert_eq!(text_value(""), "\"\"");
        assert_eq!(text_value("a\"b"), "\"a\\\"b\"");
        assert_eq!(text_value("a\\b"), "\"a\\\\b\"");
        assert_eq!(text_value("a\nb c"), "\"a\\nb c\"");
        let record = log::Record::builder()
            .level(log::Level::Warn)
            .target("pinkpage::test")
            .args(format_args!("refused /x user=admin"))
            .build();
        let line = text_line(&record);
        assert!(line.ends_with("] \"refused /x user=admin\""), "{line}");
        assert!(fields_of(&line).is_empty(), "{line}");
    }
}
