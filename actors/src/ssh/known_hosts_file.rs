//! Reading an OpenSSH `known_hosts` file the way `ssh` does: markers
//! (`@revoked`, `@cert-authority`), comma lists of host patterns with
//! wildcards (`*`, `?`) and negation (`!`), and hashed names (`|1|`).
//!
//! russh's own parser ignores markers and patterns and miscounts lines after
//! comments (NOTES-russh), so [`host_keys`](super::host_keys) decides on this
//! reading instead. Everything here is pure over the file's text, so each
//! form is unit-tested without a server.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use log::warn;
use russh::keys::PublicKey;
use sha1::Sha1;

/// What a line's marker says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// No marker: the key is a host key of the matching hosts.
    HostKey,
    /// `@revoked`: the key must never be accepted for the matching hosts,
    /// even if another line lists it.
    Revoked,
    /// `@cert-authority`: the key signs host certificates. We do not trust
    /// host certificates, so such a line is never a reason to accept.
    CertAuthority,
}

/// One key line whose host patterns matched the host asked about.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The 1-based line in the file, for messages an operator can follow.
    pub line: usize,
    /// The line's marker.
    pub marker: Marker,
    /// The key on the line.
    pub key: PublicKey,
}

/// The records of `text` whose host patterns match `host_port` (`host` or
/// `[host]:port`, as [`known_hosts_host`](super::host_keys::known_hosts_host)
/// writes it), in file order.
///
/// A line that does not parse is skipped with a warning naming `file` and
/// the line: one bad line must not hide the keys of every other host.
pub(crate) fn records_for(text: &str, host_port: &str, file: &Path) -> Vec<Record> {
    let host_port = host_port.to_ascii_lowercase();
    let mut records = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        match parse_line(raw) {
            Parsed::Blank => {}
            Parsed::Bad(why) => {
                warn!(file:% = file.display(), line = line; "skipping a known_hosts line: {why}");
            }
            Parsed::Entry {
                marker,
                patterns,
                key,
            } => {
                if hosts_match(patterns, &host_port) {
                    records.push(Record { line, marker, key });
                }
            }
        }
    }
    records
}

/// What one line of the file holds.
enum Parsed<'a> {
    /// Empty or a comment.
    Blank,
    /// Not a line we understand; the reason names no key material.
    Bad(&'static str),
    /// `[marker] patterns keytype base64 [comment]`.
    Entry {
        marker: Marker,
        patterns: &'a str,
        key: PublicKey,
    },
}

fn parse_line(raw: &str) -> Parsed<'_> {
    let trimmed = raw.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Parsed::Blank;
    }
    let mut fields = trimmed.split_ascii_whitespace();
    let mut first = fields.next().unwrap_or_default();
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return Parsed::Bad("unknown marker"),
        _ => Marker::HostKey,
    };
    if marker != Marker::HostKey {
        first = match fields.next() {
            Some(patterns) => patterns,
            None => return Parsed::Bad("a marker without hosts"),
        };
    }
    let (Some(kind), Some(base64)) = (fields.next(), fields.next()) else {
        return Parsed::Bad("no key type and key");
    };
    match PublicKey::from_openssh(&format!("{kind} {base64}")) {
        Ok(key) => Parsed::Entry {
            marker,
            patterns: first,
            key,
        },
        Err(_) => Parsed::Bad("the key does not parse"),
    }
}

/// OpenSSH's rule for a comma list of patterns: the host matches when some
/// pattern matches it and no negated (`!`) pattern does. `host_port` is
/// already lower case; patterns are compared without case, as `ssh` does.
pub(crate) fn hosts_match(patterns: &str, host_port: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let hit = if pattern.starts_with("|1|") {
            hashed_match(pattern, host_port)
        } else {
            wildcard_match(pattern.to_ascii_lowercase().as_bytes(), host_port.as_bytes())
        };
        if hit && negated {
            return false;
        }
        matched |= hit;
    }
    matched
}

/// `|1|salt|hash`: HMAC-SHA1 of the host keyed with the salt, both base64
/// (what `ssh-keygen -H` and `HashKnownHosts yes` write).
fn hashed_match(entry: &str, host_port: &str) -> bool {
    let mut parts = entry["|1|".len()..].splitn(2, '|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    // verify_slice compares in constant time; not a secret here, but free
    mac.chain_update(host_port.as_bytes()).verify_slice(&hash).is_ok()
}

/// Glob matching with `*` (any run, empty too) and `?` (one byte), in
/// linear time: on a mismatch, retry from the last `*` one byte further on
/// instead of recursing, so a hostile pattern of many stars stays cheap.
pub(crate) fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The file's text without the host-key entries that name `host_port`
/// itself, and how many names were taken out.
///
/// A name is taken out when it is this host spelled out (`[h]:2222`, any
/// case) or hashed (`|1|...`). A line naming only this host goes; a line
/// that also names other hosts keeps them and loses this name. Lines that
/// cover the host through a wildcard speak for other hosts too and stay
/// as they are, as do `@revoked` and `@cert-authority` lines, comments,
/// lines we cannot read and every other host's entries: all of those
/// are kept byte for byte, line endings included.
pub(crate) fn without_host(text: &str, host_port: &str) -> Removal {
    let host_port = host_port.to_ascii_lowercase();
    let mut out = Removal::default();
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches(['\n', '\r']);
        let Parsed::Entry {
            marker: Marker::HostKey,
            patterns,
            ..
        } = parse_line(body)
        else {
            out.text.push_str(raw);
            continue;
        };
        let names_it = |p: &&str| {
            if p.starts_with("|1|") {
                hashed_match(p, &host_port)
            } else {
                p.eq_ignore_ascii_case(&host_port)
            }
        };
        let (theirs, ours): (Vec<&str>, Vec<&str>) = patterns.split(',').partition(|p| !names_it(p));
        if ours.is_empty() {
            out.text.push_str(raw);
            continue;
        }
        out.removed += ours.len();
        out.hashed |= ours.iter().any(|p| p.starts_with("|1|"));
        // a line left with only negations would name no host at all
        if theirs.iter().all(|p| p.starts_with('!')) {
            continue;
        }
        // `patterns` is a slice of `raw`: keep what stands before and after it
        let start = patterns.as_ptr() as usize - raw.as_ptr() as usize;
        out.text.push_str(&raw[..start]);
        out.text.push_str(&theirs.join(","));
        out.text.push_str(&raw[start + patterns.len()..]);
    }
    out
}

/// What [`without_host`] made of a file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Removal {
    /// The text left.
    pub text: String,
    /// How many host names were taken out of entries.
    pub removed: usize,
    /// Whether any of them was hashed: the new entry is hashed too, so a
    /// file kept hashed (`HashKnownHosts yes`) does not start naming hosts.
    pub hashed: bool,
}

/// `|1|salt|hash` for `host_port`, as `ssh-keygen -H` writes it, with a
/// fresh 20-byte salt.
pub(crate) fn hashed_name(host_port: &str) -> String {
    // two v4 UUIDs: 244 random bits, of which the salt takes 160
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let salt = &bytes[..20];
    let mac = Hmac::<Sha1>::new_from_slice(salt)
        .expect("HMAC takes a key of any length")
        .chain_update(host_port.to_ascii_lowercase().as_bytes())
        .finalize()
        .into_bytes();
    format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJyrJDfqtSRaCznyAd4nrY3eD6E311cvLvPzGByOtKL/";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBLmic869NihaHvl6gmBPxd+/hUrvn8eu+E+6/PWja0L";

    fn lines(text: &str, host_port: &str) -> Vec<(usize, Marker)> {
        records_for(text, host_port, Path::new("known_hosts"))
            .into_iter()
            .map(|r| (r.line, r.marker))
            .collect()
    }

    #[test]
    fn wildcards_match_any_run_or_one_character() {
        assert!(wildcard_match(b"*.example.com", b"db1.example.com"));
        assert!(wildcard_match(b"db?.example.com", b"db1.example.com"));
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"[10.0.0.*]:2222", b"[10.0.0.7]:2222"));
        assert!(!wildcard_match(b"db?.example.com", b"db10.example.com"));
        assert!(!wildcard_match(b"*.example.com", b"example.com"));
        assert!(!wildcard_match(b"[10.0.0.*]:2222", b"[10.0.0.7]:22"));
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let pattern = "*a".repeat(200);
        let text = "a".repeat(199);
        assert!(!wildcard_match(pattern.as_bytes(), text.as_bytes()));
    }

    #[test]
    fn a_comma_list_matches_any_of_its_names_without_case() {
        assert!(hosts_match("web1,DB1.Example.com", "db1.example.com"));
        assert!(!hosts_match("web1,web2", "db1"));
    }

    #[test]
    fn a_negated_pattern_vetoes_the_whole_line() {
        assert!(hosts_match("*.example.com,!db1.example.com", "db2.example.com"));
        assert!(!hosts_match("*.example.com,!db1.example.com", "db1.example.com"));
        assert!(!hosts_match("!db1", "db1"));
        // a negation alone matches nothing, not everything else
        assert!(!hosts_match("!db1", "db2"));
    }

    #[test]
    fn a_hashed_name_matches_only_its_host() {
        // built the way `ssh-keygen -H` writes `[127.0.0.1]:2222`
        let salt = STANDARD.encode(b"0123456789abcdefghij");
        let mac = Hmac::<Sha1>::new_from_slice(b"0123456789abcdefghij")
            .unwrap()
            .chain_update(b"[127.0.0.1]:2222")
            .finalize()
            .into_bytes();
        let entry = format!("|1|{salt}|{}", STANDARD.encode(mac));
        assert!(hosts_match(&entry, "[127.0.0.1]:2222"));
        assert!(!hosts_match(&entry, "[127.0.0.1]:2223"));
        assert!(!hosts_match("|1|not base64|x", "[127.0.0.1]:2222"));
    }

    #[test]
    fn markers_are_read_and_line_numbers_count_every_line() {
        let text = format!(
            "# comment\n\n@revoked h {KEY_A}\n@cert-authority *.example.com {KEY_B}\nh {KEY_B} me@laptop\n"
        );
        assert_eq!(
            lines(&text, "h"),
            vec![(3, Marker::Revoked), (5, Marker::HostKey)]
        );
        assert_eq!(lines(&text, "x.example.com"), vec![(4, Marker::CertAuthority)]);
    }

    #[test]
    fn a_bad_line_is_skipped_and_the_rest_still_counts() {
        let text = format!("h ssh-ed25519 !!!\n@bogus h {KEY_A}\nh\n@revoked\nh {KEY_B}\n");
        assert_eq!(lines(&text, "h"), vec![(5, Marker::HostKey)]);
    }

    #[test]
    fn without_host_takes_out_this_hosts_entries_and_keeps_everything_else_byte_for_byte() {
        let salt = b"0123456789abcdefghij";
        let mac = Hmac::<Sha1>::new_from_slice(salt)
            .unwrap()
            .chain_update(b"[h]:2222")
            .finalize()
            .into_bytes();
        let hashed = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(mac));
        let text = format!(
            "# keep me\r\n[h]:2222 {KEY_A}\n[H]:2222,other {KEY_B} note\n  {hashed} {KEY_B}\n\
             [h]:2222,!x {KEY_A}\n*:2222 {KEY_A}\n@revoked [h]:2222 {KEY_B}\nh {KEY_A}\nbad line\n[h]:2222 {KEY_B}"
        );
        let out = without_host(&text, "[h]:2222");
        assert_eq!(
            out.text,
            format!(
                "# keep me\r\nother {KEY_B} note\n*:2222 {KEY_A}\n@revoked [h]:2222 {KEY_B}\nh {KEY_A}\nbad line\n"
            )
        );
        assert_eq!(out.removed, 5);
        assert!(out.hashed);
        // nothing of this host: the text comes back as it was
        let none = without_host(&text, "[q]:2222");
        assert_eq!(
            (none.text.as_str(), none.removed, none.hashed),
            (text.as_str(), 0, false)
        );
    }

    #[test]
    fn a_made_hashed_name_matches_its_host_only_and_differs_each_time() {
        let one = hashed_name("[127.0.0.1]:2222");
        assert!(hosts_match(&one, "[127.0.0.1]:2222"));
        assert!(!hosts_match(&one, "[127.0.0.1]:2223"));
        assert_ne!(one, hashed_name("[127.0.0.1]:2222"));
    }
}
