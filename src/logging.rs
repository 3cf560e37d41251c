//! Logging: `log` + `env_logger`, filtered by `RUST_LOG` (default `info`).
//!
//! Call sites log structured key-values
//! (`info!(server = name, connection_id = id; "ssh command started")`).
//! `PINKPAGE_LOG_FORMAT=text` prints them after the message;
//! `PINKPAGE_LOG_FORMAT=json` writes one JSON object a line:
//! `{"time", "level", "target", "message", "fields": {...}}`.
//!
//! Nothing here filters secrets: secrets are kept out of log calls by type
//! (`Secret` prints as `[redacted]`) and by review.
//!
//! Client strings (paths, server names, error details quoting them) reach
//! the log through messages and fields, so both formats make sure one
//! record is one line: JSON escapes by itself, and the text format passes
//! the message and every field through [`escape_control`], so a path with
//! a newline cannot forge a log line of its own, nor an escape sequence
//! repaint the operator's terminal.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;

use log::kv::{self, VisitSource};

use crate::settings::LogFormat;

/// Installs the global logger. Safe to call once per process.
pub fn init(format: LogFormat) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter);
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
/// character of the message and the values escaped.
pub fn text_line(record: &log::Record<'_>) -> String {
    let mut line = format!(
        "[{} {:<5} {}] {}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        record.level(),
        record.target(),
        escape_control(&record.args().to_string()),
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

struct TextFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextFields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let value = value.to_string();
        let _ = write!(
            self.0,
            " {}={}",
            escape_control(key.as_str()),
            escape_control(&value)
        );
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
            line.ends_with(" path=/tmp/x\\n[2026-11-29T00:00:00Z INFO  pinkpage] forged"),
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
}
