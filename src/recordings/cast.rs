//! The asciicast v2 format, as Pink-Page writes it: a header line (a JSON
//! object), then one JSON array per event, `[seconds, "o"|"i"|"r", data]`,
//! each line ending in `\n`. A file cut short (a daemon killed mid-write)
//! is whole up to its last `\n`: [`whole_length`] finds it.

use std::io::{Read, Seek, SeekFrom};

use serde::Serialize;

/// The header line's fields.
#[derive(Debug, Serialize)]
pub struct Header<'a> {
    /// Always 2.
    pub version: u8,
    /// Columns when the PTY opened.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// When the recording started (Unix seconds).
    pub timestamp: i64,
    /// The command (absent for an interactive shell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<&'a str>,
    /// `user@server`.
    pub title: String,
    /// `TERM` of the PTY.
    pub env: HeaderEnv<'a>,
}

/// The header's `env`.
#[derive(Debug, Serialize)]
pub struct HeaderEnv<'a> {
    /// The PTY's terminal type.
    #[serde(rename = "TERM")]
    pub term: &'a str,
}

impl Header<'_> {
    /// The header line, with its `\n`.
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| "{\"version\":2}".to_owned());
        line.push('\n');
        line
    }
}

/// What an event line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Output.
    Output,
    /// Typed input.
    Input,
    /// A resize (`"COLSxROWS"`).
    Resize,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Kind::Output => "o",
            Kind::Input => "i",
            Kind::Resize => "r",
        }
    }
}

/// Appends one event line to `out`: `seconds` since the start (kept to
/// microseconds), its kind and its text.
pub fn push_event(out: &mut Vec<u8>, seconds: f64, kind: Kind, data: &str) {
    use std::io::Write;
    let data = serde_json::to_string(data).unwrap_or_else(|_| "\"\"".to_owned());
    let _ = writeln!(out, "[{seconds:.6}, \"{}\", {data}]", kind.code());
}

/// How much of a cast file of `len` bytes is whole: up to and including
/// its last `\n` (a daemon killed mid-write leaves a partial last line).
/// Reads backwards from the end, a block at a time.
pub fn whole_length<F: Read + Seek>(file: &mut F, len: u64) -> std::io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn an_event_is_one_json_array_on_one_line() {
        let mut out = Vec::new();
        push_event(&mut out, 1.5, Kind::Output, "a\"b\n\u{1b}[0m");
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.ends_with("]\n") && line.matches('\n').count() == 1,
            "{line:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v[0].as_f64(), Some(1.5));
        assert_eq!(v[1], "o");
        assert_eq!(v[2], "a\"b\n\u{1b}[0m");
    }

    #[test]
    fn the_header_has_what_asciicast_v2_asks() {
        let h = Header {
            version: 2,
            width: 80,
            height: 24,
            timestamp: 1_800_000_000,
            command: Some("ls"),
            title: "ann@web1".into(),
            env: HeaderEnv { term: "xterm" },
        };
        let v: serde_json::Value = serde_json::from_str(&h.line()).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(80), Some(24)));
        assert_eq!(v["title"], "ann@web1");
        assert_eq!(v["env"]["TERM"], "xterm");
        assert_eq!(v["command"], "ls");
    }

    #[test]
    fn a_partial_last_line_is_not_whole() {
        let text = b"{\"version\":2}\n[0.1, \"o\", \"a\"]\n[0.2, \"o\", \"b";
        let mut f = Cursor::new(text.to_vec());
        let whole = whole_length(&mut f, text.len() as u64).unwrap();
        assert_eq!(&text[..whole as usize], b"{\"version\":2}\n[0.1, \"o\", \"a\"]\n");
        // longer than one block
        let mut big = vec![b'x'; 200 * 1024];
        big[10] = b'\n';
        let mut f = Cursor::new(big.clone());
        assert_eq!(whole_length(&mut f, big.len() as u64).unwrap(), 11);
        let mut f = Cursor::new(Vec::new());
        assert_eq!(whole_length(&mut f, 0).unwrap(), 0);
    }
}
