//! The names Pink-Page gives the temporary files it makes on servers, and
//! the checks that recognise them: an upload's or a copy's hidden sibling
//! `.<name>.pinkpage-<12 hex>.part`, a script's
//! `/tmp/.pinkpage-script-<32 hex>`. Crash recovery (`super::temp_files`)
//! removes nothing whose name these checks refuse, so the writers and the
//! recovery share this one definition.

/// The longest file name (one path component) the file systems we write
/// to accept, in bytes.
pub const NAME_MAX: usize = 255;
/// The directory scripts are uploaded to: world-writable with the sticky
/// bit on every Linux; the file's unique name, O_EXCL creation and mode
/// 0700 keep it private.
pub const REMOTE_TEMP_DIR: &str = "/tmp";
/// Hex digits of randomness in a temporary name.
const TAG_LEN: usize = 12;
/// What a temporary name adds around the target's name.
const PREFIX: &str = ".";
const MARK: &str = ".pinkpage-";
const SUFFIX: &str = ".part";

/// The hidden temporary name a write to `path` goes to first:
/// `<dir>/.<name>.pinkpage-<12 hex>.part`, unique, in the target's
/// directory. The embedded name is shortened (at a character boundary)
/// so the whole stays within [`NAME_MAX`] bytes.
pub fn temp_name_for(path: &str) -> String {
    let (dir, name) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let room = NAME_MAX - PREFIX.len() - MARK.len() - TAG_LEN - SUFFIX.len();
    let mut keep = name.len().min(room);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!("{dir}{PREFIX}{}{MARK}{}{SUFFIX}", &name[..keep], &tag[..TAG_LEN])
}

/// Whether the last component of `path` is a name [`temp_name_for`]
/// gives: `.<name>.pinkpage-<12 hex>.part`. Crash recovery removes nothing
/// else.
pub fn is_temp_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some(rest) = name.strip_prefix(PREFIX).and_then(|n| n.strip_suffix(SUFFIX)) else {
        return false;
    };
    let Some(tag) = rest.len().checked_sub(TAG_LEN).and_then(|i| rest.get(i..)) else {
        return false;
    };
    rest[..rest.len() - TAG_LEN].ends_with(MARK)
        && tag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

const SCRIPT_PREFIX: &str = ".pinkpage-script-";

pub fn script_path() -> String {
    format!(
        "{REMOTE_TEMP_DIR}/{SCRIPT_PREFIX}{}",
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `path` is a name the script runner (`files::script`) gives its temporary file;
/// crash recovery removes nothing else.
pub fn is_script_path(path: &str) -> bool {
    path.strip_prefix(REMOTE_TEMP_DIR)
        .and_then(|p| p.strip_prefix('/'))
        .and_then(|p| p.strip_prefix(SCRIPT_PREFIX))
        .is_some_and(|id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised_and_nothing_else_is() {
        for target in [
            "/srv/notes.txt",
            "relative.bin",
            &format!("/d/{}", "가".repeat(100)),
        ] {
            let temp = temp_name_for(target);
            assert!(is_temp_name(&temp), "{temp}");
        }
        for other in [
            "/srv/notes.txt",
            "/srv/.notes.txt.pinkpage-0123456789ab.partx",
            "/srv/notes.txt.pinkpage-0123456789ab.part",
            "/srv/.notes.txt.pinkpage-0123456789AB.part",
            "/srv/.notes.txt.pinkpage-0123456789a.part",
            "/srv/.notes.txt.pinkpage-0123456789ab.part/x",
            ".pinkpage-.part",
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
    }

    #[test]
    fn temporary_names_are_hidden_unique_siblings_of_the_target() {
        let t = temp_name_for("/data/in box/보고서.txt");
        assert!(t.starts_with("/data/in box/.보고서.txt.pinkpage-"), "{t}");
        assert!(t.ends_with(".part"), "{t}");
        assert_ne!(t, temp_name_for("/data/in box/보고서.txt"));
        let rel = temp_name_for("notes.txt");
        assert!(rel.starts_with(".notes.txt.pinkpage-"), "{rel}");
        assert_eq!(rel.len(), ".notes.txt.pinkpage-".len() + TAG_LEN + ".part".len());
    }

    #[test]
    fn a_temporary_name_fits_the_name_limit_even_for_the_longest_names() {
        for name in ["a".repeat(255), "한".repeat(85), "é".repeat(127), "x".repeat(227)] {
            let t = temp_name_for(&format!("/d/{name}"));
            let file = t.strip_prefix("/d/").unwrap();
            assert!(file.len() <= NAME_MAX, "{} bytes: {file}", file.len());
            assert!(file.starts_with('.') && file.ends_with(SUFFIX), "{file}");
            // the kept part is a prefix of the name, cut at a char boundary
            let kept = file[1..].split(MARK).next().unwrap();
            assert!(name.starts_with(kept), "{kept}");
        }
        // a name that fits is kept whole
        let t = temp_name_for(&"y".repeat(227));
        assert!(t.starts_with(&format!(".{}.pinkpage-", "y".repeat(227))), "{t}");
        assert_eq!(t.len(), NAME_MAX);
    }

    #[test]
    fn script_paths_are_recognised_and_nothing_else_is() {
        assert!(is_script_path(&script_path()));
        for other in [
            "/tmp/.pinkpage-script-",
            "/tmp/.pinkpage-script-0123456789abcdef0123456789abcdeg",
            "/var/tmp/.pinkpage-script-0123456789abcdef0123456789abcdef",
            "/tmp/x/.pinkpage-script-0123456789abcdef0123456789abcdef",
        ] {
            assert!(!is_script_path(other), "{other}");
        }
    }
}
