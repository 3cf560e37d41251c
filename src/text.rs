//! Character rules, made once for both a check and its OpenAPI pattern:
//! the sets request fields, account tags and token labels are held to. A
//! leaf every layer may use.

/// A set of characters, as ranges: a rule's check and its OpenAPI
/// `pattern` are both made from it, so a client reading the document
/// learns exactly what the daemon refuses.
///
/// The pattern spells every range as `\uXXXX`, which ECMA-262 (what JSON
/// Schema means), Python's `re` (schemathesis and many clients) and Rust's
/// `regex` read alike; shorthands such as `\s` differ between them (ECMA's
/// includes U+FEFF, Rust's U+0085, Python's ASCII mode neither).
#[derive(Debug, Clone, Copy)]
pub struct CharRanges(&'static [(char, char)]);

impl CharRanges {
    /// Whether `c` is in the set.
    pub fn contains(&self, c: char) -> bool {
        self.0.iter().any(|(from, to)| (*from..=*to).contains(&c))
    }

    /// The set as the inside of a regular-expression character class
    /// (`\u0000-\u001f...`), to be put in `[...]` or `[^...]`.
    pub fn class(&self) -> String {
        let u = |c: char| format!("\\u{:04x}", u32::from(c));
        self.0
            .iter()
            .map(|(from, to)| {
                if from == to {
                    u(*from)
                } else {
                    format!("{}-{}", u(*from), u(*to))
                }
            })
            .collect()
    }
}

/// Control characters, Unicode's `Cc` (what [`char::is_control`] says).
pub const CONTROL: CharRanges = CharRanges(&[('\u{0}', '\u{1f}'), ('\u{7f}', '\u{9f}')]);

/// Whitespace, Unicode's `White_Space` (what [`char::is_whitespace`] and
/// [`str::trim`] say).
pub const WHITESPACE: CharRanges = CharRanges(&[
    ('\u{9}', '\u{d}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_character_sets_are_exactly_what_the_standard_library_says() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(CONTROL.contains(c), c.is_control(), "{c:?}");
            assert_eq!(WHITESPACE.contains(c), c.is_whitespace(), "{c:?}");
        }
    }

    #[test]
    fn a_character_class_is_spelled_in_four_hex_digits() {
        assert_eq!(CONTROL.class(), r"\u0000-\u001f\u007f-\u009f");
        assert!(WHITESPACE.class().starts_with(r"\u0009-\u000d\u0020\u0085"));
    }
}
