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

use std::io::Write;

use log::kv::{self, VisitSource};

use crate::settings::LogFormat;

/// Installs the global logger. Safe to call once per process.
pub fn init(format: LogFormat) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter);
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = json_line(record);
            writeln!(buf, "{line}")
        });
    }
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
}
