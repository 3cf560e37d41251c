//! What a link of the chain is made of: a row's stored fields in a fixed
//! order ([`COLUMNS`], [`Field`]) and their canonical encoding, a MAC, and
//! a link ([`Head`]: a row id and its MAC). A leaf: the key and the walk
//! import it.

use std::fmt;
use std::str::FromStr;

use crate::records::{timestamp, NewAuditEvent};

/// The stored fields of an audit row, in the order the canonical encoding
/// takes them: every column but the MAC. A store reads and writes rows by
/// this list, so the fields it MACs are the fields it stores.
pub const COLUMNS: [&str; 16] = [
    "id",
    "instance",
    "at",
    "actor",
    "user",
    "remote_addr",
    "domain",
    "action",
    "server",
    "target",
    "outcome",
    "code",
    "command",
    "exit_status",
    "bytes",
    "detail",
];

/// One stored value, as SQL databases have them. A row is canonicalised
/// from the values as stored, not as the daemon's types read them, so a
/// value edited into something the types would refuse still counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// No value.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number (never written by the daemon).
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes (never written by the daemon).
    Blob(Vec<u8>),
}

impl Field {
    /// `Text`, or `Null` for `None`.
    pub fn text(s: Option<&str>) -> Field {
        s.map_or(Field::Null, |s| Field::Text(s.to_owned()))
    }

    /// `Int`, or `Null` for `None`.
    pub fn int(n: Option<i64>) -> Field {
        n.map_or(Field::Null, Field::Int)
    }

    /// The fields a new row is stored with, in [`COLUMNS`] order: a store
    /// inserts these very values and links them, so what is linked is
    /// what is stored.
    pub fn row(id: i64, instance: &str, e: &NewAuditEvent) -> Vec<Field> {
        vec![
            Field::Int(id),
            Field::Text(instance.to_owned()),
            Field::Text(timestamp(e.at)),
            Field::Text(e.actor.clone()),
            Field::text(e.user.as_deref()),
            Field::text(e.remote_addr.as_deref()),
            Field::Text(e.domain.clone()),
            Field::Text(e.action.clone()),
            Field::text(e.server.as_deref()),
            Field::text(e.target.as_deref()),
            Field::text(e.outcome.map(|o| o.as_str())),
            Field::int(e.code.map(i64::from)),
            Field::text(e.command.as_deref()),
            Field::int(e.exit_status),
            Field::int(e.bytes),
            Field::text(e.detail.as_ref().map(|d| d.to_string()).as_deref()),
        ]
    }

    /// Feeds the field's encoding: a tag, then the value (text and bytes
    /// with their length first, so no two rows encode alike).
    fn encode(&self, out: &mut impl FnMut(&[u8])) {
        match self {
            Field::Null => out(&[0]),
            Field::Int(n) => {
                out(&[1]);
                out(&n.to_be_bytes());
            }
            Field::Real(x) => {
                out(&[2]);
                out(&x.to_bits().to_be_bytes());
            }
            Field::Text(s) => {
                out(&[3]);
                out(&(s.len() as u64).to_be_bytes());
                out(s.as_bytes());
            }
            Field::Blob(b) => {
                out(&[4]);
                out(&(b.len() as u64).to_be_bytes());
                out(b);
            }
        }
    }
}

/// Feeds the canonical encoding of `row` (its field count, then each
/// field) to `out`.
pub(super) fn canonical(row: &[Field], out: &mut impl FnMut(&[u8])) {
    out(&(row.len() as u32).to_be_bytes());
    for field in row {
        field.encode(out);
    }
}

/// A MAC of the chain: 32 bytes, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 32]);

impl Mac {
    /// The hex form, as stored.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Reads 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Mac> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut mac = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            mac[i] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(Mac(mac))
    }

    /// Compares in constant time: a MAC is checked against one an attacker
    /// may be guessing.
    pub fn matches(&self, other: &Mac) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({})", self.to_hex())
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A link of the chain: a row id and its MAC. The chain's head (its newest
/// row) is what `pinkpage audit head` prints (`<id>:<mac>`) to keep
/// elsewhere; the start of a chain is a link too (the sealed rows' last id
/// and the genesis MAC, or a cut's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The row id (the last sealed or cut id for a start).
    pub id: i64,
    /// Its MAC.
    pub mac: Mac,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id, self.mac)
    }
}

impl FromStr for Head {
    type Err = String;

    fn from_str(s: &str) -> Result<Head, String> {
        let bad = || {
            format!(
                "'{s}' is not a head; a head is <row id>:<64 hex digits>, as `pinkpage audit head` prints it"
            )
        };
        let (id, mac) = s.trim().split_once(':').ok_or_else(bad)?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        if id < 0 {
            return Err(bad());
        }
        Ok(Head {
            id,
            mac: Mac::from_hex(mac).ok_or_else(bad)?,
        })
    }
}
